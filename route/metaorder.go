package route

import (
	"sync"

	"github.com/edgewamp/edgewamp/proto"
)

// The realm's meta events in causal order.
//
// The registration, subscription and session tables change under the
// realm's lock, on the shard of the session that changes them. Each
// change's meta event is queued in the realm's metaQueue in the same
// critical section (metaPush), so the queue holds the events in the order
// of the changes they announce; the shard then publishes what the queue
// holds (metaFlush), one shard at a time, in queue order, posting each
// event to every other shard with subscribers of it: each shard's mailbox
// is in order, so every subscriber gets the events in the order of the
// changes. Its own shard's subscribers get it inline when no meta event
// posted to the shard earlier waits there (else it is posted there too,
// behind them): so that a session's on_join reaches them before the
// events it publishes, which fanout delivers to them inline. WAMP
// Advanced Profile, Registration Meta Events: "A
// wamp.registration.on_register event MUST be fired subsequent to a
// wamp.registration.on_create event [...] Similarly, the
// wamp.registration.on_delete event MUST be preceded by a
// wamp.registration.on_unregister event"; the same for subscriptions; and a
// session's on_leave comes after the events of its registrations and
// subscriptions going (leave queues it after them).
//
// Before, each shard published its events after the lock, delivered
// inline to its own subscribers and through the mailboxes of the others:
// two callees on shards 0 and 1 registering one URI at once gave a
// subscriber on shard 2 on_register before on_create, or on_delete before
// the other callee's on_unregister, in 22 to 46 of 300 rounds (the same
// for subscriptions in 35 to 42, and with sessions joining and leaving
// in 14 to 23; TestMetaEventsCausalOrder*, with -race).
//
// Nothing waits: a shard that finds another publishing leaves its events
// to it (the publisher takes them before it lets go), and a publisher
// stops after metaTurn events, the rest published by the next shard that
// queues one or by a turn it posts to itself. PUBLISH and CALL do not
// come here.

// metaQueue is a realm's meta events not published yet.
type metaQueue struct {
	mu sync.Mutex // a leaf lock, taken under Realm.mu (never the other way)
	// q[head:] is the events waiting, oldest first. Guarded by mu.
	q    []metaItem
	head int
	// busy: a shard is publishing events it took from q; no other
	// shard takes any until it lets go. cont: a turn to publish the
	// rest is posted. Guarded by mu.
	busy, cont bool
}

// metaItem is one meta event waiting. Its arguments are built when it is
// published, from values that do not change, unless args holds them.
type metaItem struct {
	topic string
	sess  uint64 // the session it is about
	id    uint64 // the registration or subscription, for their events
	// made is, for on_create, the registration or subscription whose
	// details it carries.
	made interface{ details() map[string]any }
	args []any // the arguments, when built beforehand (session events)
	// local: to this node's subscribers only (an on_leave announced for
	// a dead node's session), not to the mesh.
	local bool
}

// metaTurn bounds the events one shard publishes in one go (about 1 to 2
// ms of encoding): one shard's loop is not held by the others' events.
const metaTurn = 1024

// metaKeepQueue bounds the queue array an empty queue keeps.
const metaKeepQueue = 4096

// metaPush queues a meta event of rm. Call it in the critical section of
// Realm.mu that makes the change it announces (or, for an event that
// announces no change of the tables, after what it follows), then
// metaFlush on the shard's goroutine once the lock is released. Safe for
// concurrent use; it never blocks on anything but the queue's lock.
func (rm *Realm) metaPush(it metaItem) {
	mq := &rm.meta
	mq.mu.Lock()
	mq.q = append(mq.q, it)
	mq.mu.Unlock()
}

// metaFlush publishes rm's queued meta events, in order, unless another
// shard is doing it (it takes them before it lets go). At most metaTurn
// of them; a turn of this shard's is posted for the rest. Call it on the
// shard's goroutine without Realm.mu.
func (s *Shard) metaFlush(rm *Realm) {
	mq := &rm.meta
	mq.mu.Lock()
	if mq.busy || mq.head == len(mq.q) {
		mq.mu.Unlock()
		return
	}
	mq.busy = true
	done := false
	defer func() {
		// A panic publishing (the gateway's lanes recover on the loop)
		// must not leave the realm's meta events stopped for good.
		if !done {
			mq.mu.Lock()
			mq.busy = false
			mq.mu.Unlock()
		}
	}()
	var batch [64]metaItem
	for n := 0; mq.head < len(mq.q) && n < metaTurn; {
		k := copy(batch[:], mq.q[mq.head:])
		clear(mq.q[mq.head : mq.head+k])
		mq.head += k
		if mq.head == len(mq.q) {
			mq.head, mq.q = 0, mq.q[:0]
			if cap(mq.q) > metaKeepQueue {
				mq.q = nil
			}
		} else if mq.head >= metaKeepQueue && 2*mq.head >= len(mq.q) {
			// The events taken move out of the array: appends grow it
			// from its length, taken events included, so a queue that
			// never empties (shards pushing as fast as one publishes)
			// kept every event it ever held. Half of it at least was
			// taken: moving the rest costs no more than the appends
			// that filled that half.
			m := copy(mq.q, mq.q[mq.head:])
			clear(mq.q[m:])
			mq.head, mq.q = 0, mq.q[:m]
		}
		mq.mu.Unlock()
		for i := range batch[:k] {
			s.metaPublish(rm, &batch[i])
			batch[i] = metaItem{}
		}
		n += k
		mq.mu.Lock()
	}
	mq.busy, done = false, true
	post := mq.head < len(mq.q) && !mq.cont
	mq.cont = mq.cont || post
	mq.mu.Unlock()
	if post {
		err := s.yieldTurn(func() {
			mq.mu.Lock()
			mq.cont = false
			mq.mu.Unlock()
			s.metaFlush(rm)
		})
		if err != nil { // stopped: the next event queued takes them
			mq.mu.Lock()
			mq.cont = false
			mq.mu.Unlock()
		}
	}
}

// metaPublish publishes one meta event: to this node's subscribers, each
// shard's through its mailbox (this shard's too, behind the events other
// shards published before), and to the other nodes unless local. It costs
// one cached lookup when nobody subscribed (on one node).
func (s *Shard) metaPublish(rm *Realm, it *metaItem) {
	mesh := s.r.mesh != nil && !it.local
	subs := rm.lookupSubs(s.idx, []byte(it.topic))
	if len(subs) == 0 && !mesh {
		return
	}
	args := it.args
	switch {
	case args != nil:
	case it.made != nil:
		args = []any{it.sess, it.made.details()}
	default:
		args = []any{it.sess, it.id}
	}
	raw, err := proto.EncodeValue(metaSer, args)
	if err != nil {
		s.r.log.Error("meta event encoding failed", "topic", it.topic, "err", err)
		return
	}
	// Its own copy: shared by the shards' tasks, as fanout's.
	p := &publication{id: s.rng.Uint64N(proto.MaxID) + 1, topic: []byte(it.topic), c: &carry{buf: raw.B, args: raw}}
	// To the mesh first: meshPublish writes p (its retained flag, while
	// it encodes the envelope), which the shards read once it is posted
	// to them. After the posts, it raced with their deliveries.
	if mesh {
		s.meshPublish(rm, p, false)
	}
	if len(subs) > 0 {
		s.metaFanout(p, subs)
	}
}

// metaFanout posts p to every other shard with subscribers in subs, within
// the shards' event backlog as fanout, and delivers it to this shard's
// inline unless meta events posted here earlier are still waiting
// (metaPosted): it would overtake them, and p too is then posted.
//
// Before, p was posted to this shard in every case, while the events a
// session publishes reach the subscribers of its own shard inline
// (fanout): a PUBLISH read in the same round of the loop as its session's
// HELLO (sent right behind it, or read before the loop turned to its
// mailbox) reached them before that session's on_join.
// TestOnJoinBeforeTheSessionsFirstEventOnItsLoop.
func (s *Shard) metaFanout(p *publication, subs []*subscription) {
	var present [maxShards]bool
	markShards(&present, subs)
	n := p.cost()
	inline := false
	for i, sh := range s.r.shards {
		if !present[i] {
			continue
		}
		// Another shard adds to this one's metaPosted only while it
		// publishes its realm's meta events (that queue busy), so none of
		// this realm's is added while this shard publishes them; another
		// realm's may be, in no order with these.
		if sh == s && s.metaPosted.Load() == 0 && s.selfEvents == 0 {
			inline = true
			continue
		}
		if b := sh.eventBacklog.Load(); b > 0 && b+n > maxEventBacklog {
			s.stats.EventsBacklog.Add(1)
			continue
		}
		sh.eventBacklog.Add(n)
		sh.metaPosted.Add(1)
		sh.post(task{kind: tMeta, pub: p, subs: subs, b: uint64(n)})
	}
	if inline {
		s.deliverEvents(p, subs)
	}
}
