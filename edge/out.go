package edge

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// The outbound queue: the event loops never call NATS. What they send to
// the mesh (and the subscription changes their sessions cause) is copied
// into a queue, in order, and one sender goroutine hands it to nats.go.
// A nats.go publish may write to the in-process pipe and wait for the
// server to read it; the sender absorbs that wait, the loops do not.
//
// The queue is two batches, swapped: producers append to the current one
// under mu (payload bytes into one growing arena, so steady state
// allocates nothing), the sender drains the other. Its bytes are bounded
// (Options.MaxOutbound): past the bound, enqueue fails and the caller
// counts the loss (an event) or fails the call.
//
// The sender packs consecutive route envelopes for the same subject (the
// calls, results and chunks for one node; the events of one topic) into
// one NATS message, a frame (frame.go): a router hands the mesh several
// envelopes per event-loop tick, and every NATS message costs a parse and
// a routing decision in both servers, a message object and a channel hop
// in the receiving client. Order is kept: a frame holds a run of
// consecutive items, and the receiver unpacks it in order.

// ErrBusy is returned when the mesh's outbound queue is full.
var ErrBusy = errors.New("edge: mesh outbound queue full")

// ErrClosed is returned after Shutdown.
var ErrClosed = errors.New("edge: node closed")

type opKind uint8

const (
	opPublish opKind = iota
	opSubscribe
	opUnsubscribe
)

type outItem struct {
	op    opKind
	pack  bool // a route envelope that may share a frame with its neighbours
	subj  string
	reply string
	off   int // payload in the batch arena
	n     int
	ent   *interest // opSubscribe, opUnsubscribe
}

type outBatch struct {
	items []outItem
	arena []byte
	cost  int64 // what its items were charged (itemCost)
}

type outq struct {
	mu      sync.Mutex
	cur     *outBatch   // guarded by mu
	bytes   int64       // guarded by mu: what the items queued cost (both batches; itemCost)
	busy    atomic.Bool // bytes > max/16; written under mu, read without it (Node.noInterest)
	max     int64
	closed  bool // guarded by mu
	wake    chan struct{}
	spare   *outBatch // owned by the sender
	frame   []byte    // owned by the sender: the frame being built
	group   string    // owned by the sender: the queue group of its event subscriptions (eventQueue)
	dropped uint64    // guarded by mu
	// owed are the messages that end a call (classEnd) which came when
	// the queue was past even their reserve: each is queued once the
	// sender has made room (done), in order, so that the caller on
	// another node is answered (or its callee interrupted) late rather
	// than never. owedBytes, what they cost (itemCost), is at most a
	// sixteenth of max: past it one is refused as before. Guarded by mu.
	owed      []owedItem
	owedBytes int64
}

// owedItem is a message that ends a call, waiting for room (outq.owed).
type owedItem struct {
	subj, reply string
	data        []byte
}

func newOutq(max int64) *outq {
	return &outq{cur: &outBatch{}, spare: &outBatch{}, max: max, wake: make(chan struct{}, 1)}
}

// Each message has a class, which decides how much of the queue it may
// fill. Events and meta traffic, which clients size and repeat at will,
// stop at three quarters of the bound; calls and their answers may use
// the whole of it, so that one client flooding large events does not make
// every other session's cross-node calls fail; the small messages that
// end a call another node waits for (route.MeshEndSender: an error for a
// caller there, an INTERRUPT for a callee there) may use an eighth past
// it, so that the queue full of calls and results that refused a callee's
// answer does not refuse the error that replaces it too, which left the
// caller waiting for ever, and past that wait for room (outq.owed, a
// sixteenth more) rather than being refused; the node's own messages (heartbeats, directory
// changes and syncs, interest, goodbye) may use a quarter past it, so
// that no flood silences the heartbeats, which would make the others take
// the node for dead.
type outClass uint8

const (
	classBulk  outClass = iota // events, meta queries and answers
	classRoute                 // calls, results, chunks, bounces
	classEnd                   // errors and interrupts that end a call (SendEnd)
	classOwn                   // the node's own messages
)

// limit is how many payload bytes may be queued when an item of class c
// is added.
func (q *outq) limit(c outClass) int64 {
	switch c {
	case classBulk:
		return q.max - q.max/4
	case classEnd:
		return q.max + q.max/8
	case classOwn:
		return q.max + q.max/4
	}
	return q.max
}

// push queues one of the node's own messages (heartbeats, directory
// changes and syncs, interest, goodbye), which may use a reserve past the
// bound. data is copied. Safe for concurrent use; never blocks.
func (q *outq) push(op opKind, subj, reply string, data []byte, ent *interest) error {
	return q.pushItem(op, false, classOwn, subj, reply, data, ent)
}

// pushEnv queues a route envelope that the sender may pack into a frame
// with the envelopes queued next to it for the same subject and reply:
// an event (classBulk) or a message of a call (classRoute, classEnd).
func (q *outq) pushEnv(c outClass, subj, reply string, env []byte) error {
	return q.pushItem(opPublish, true, c, subj, reply, env, nil)
}

// pushBulk queues a message of the node's own that a client's request
// makes and sizes, as often as the client likes (a meta query, its
// answer): within the events' share, never in the reserve.
func (q *outq) pushBulk(subj, reply string, data []byte) error {
	return q.pushItem(opPublish, false, classBulk, subj, reply, data, nil)
}

// itemCost is what a queued item counts against the bound: its payload,
// and its item and subject too, which a flood of tiny events to ever new
// topics would otherwise queue at several times the bound.
func itemCost(subj, reply string, data []byte) int64 {
	return int64(len(data)+len(subj)+len(reply)) + itemOverhead
}

// itemOverhead is an outItem's own size.
const itemOverhead = 64

func (q *outq) pushItem(op opKind, pack bool, c outClass, subj, reply string, data []byte, ent *interest) error {
	cost := itemCost(subj, reply, data)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	if c == classEnd && len(q.owed) > 0 {
		q.payOwed() // those owed first, in order, as far as there is room
	}
	// Interest changes are counted, never refused: one refused would
	// leave a subscription without its NATS interest.
	if op == opPublish && (q.bytes+cost > q.limit(c) || c == classEnd && len(q.owed) > 0) {
		if c == classEnd && q.owedBytes+cost <= q.max/16 {
			q.owed = append(q.owed, owedItem{subj: subj, reply: reply, data: append([]byte(nil), data...)})
			q.owedBytes += cost
			q.mu.Unlock()
			return nil
		}
		q.dropped++
		q.mu.Unlock()
		return ErrBusy
	}
	q.add(op, pack, subj, reply, data, ent, cost)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// add appends an item to the current batch. Call with mu held.
func (q *outq) add(op opKind, pack bool, subj, reply string, data []byte, ent *interest, cost int64) {
	b := q.cur
	off := len(b.arena)
	b.arena = append(b.arena, data...)
	b.items = append(b.items, outItem{op: op, pack: pack, subj: subj, reply: reply, off: off, n: len(data), ent: ent})
	b.cost += cost
	q.bytes += cost
	q.busy.Store(q.bytes > q.max/16)
}

// payOwed queues the owed messages that fit in classEnd's room now, in
// order, and reports whether it queued any. Call with mu held.
func (q *outq) payOwed() bool {
	k := 0
	for _, o := range q.owed {
		cost := itemCost(o.subj, o.reply, o.data)
		if q.bytes+cost > q.limit(classEnd) {
			break
		}
		q.add(opPublish, false, o.subj, o.reply, o.data, nil, cost)
		q.owedBytes -= cost
		k++
	}
	if k == 0 {
		return false
	}
	clear(q.owed[:k])
	q.owed = q.owed[k:]
	if len(q.owed) == 0 {
		q.owed = nil
	}
	return true
}

// take swaps the batches and returns the one to send (nil when empty).
func (q *outq) take() *outBatch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.cur.items) == 0 {
		return nil
	}
	b := q.cur
	q.cur, q.spare = q.spare, nil
	return b
}

// done gives a sent batch back.
func (q *outq) done(b *outBatch) {
	n := b.cost
	b.cost = 0
	clear(b.items)
	b.items = b.items[:0]
	if cap(b.items) > 64<<10 {
		b.items = nil // a burst of small items (4 MiB of them)
	}
	if cap(b.arena) > 4<<20 {
		b.arena = nil // a burst: do not keep it pinned
	} else {
		b.arena = b.arena[:0]
	}
	q.mu.Lock()
	q.bytes -= n
	q.busy.Store(q.bytes > q.max/16)
	q.spare = b
	if len(q.owed) > 0 && !q.closed {
		q.payOwed() // the sender takes them next (take)
	}
	q.mu.Unlock()
}

// run is the sender goroutine: it hands every queued item to nats.go, in
// order, until stop is closed and the queue is empty.
func (n *Node) runSender(stop <-chan struct{}) {
	defer n.wg.Done()
	q := n.out
	for {
		b := q.take()
		if b == nil {
			select {
			case <-q.wake:
				continue
			case <-stop:
				if b = q.take(); b == nil {
					return
				}
			}
		}
		if h := n.testHookSend.Load(); h != nil { // tests only
			(*h)(b)
		}
		n.sendBatch(b)
		q.done(b)
	}
}

func (n *Node) sendBatch(b *outBatch) {
	nc := n.nc
	limit := maxFrame
	mp := nc.MaxPayload()
	if mp > 0 {
		n.maxPayload.Store(mp)
	}
	if mp > 0 && mp < int64(limit) {
		limit = int(mp)
	}
	if n.out.group == "" {
		n.out.group = eventQueue(n.boot)
	}
	// "PUB <subject> <reply> <size>\r\n" and "SUB <subject> <queue>
	// <sid>\r\n", with room for the numbers.
	maxLine := n.maxControlLine() - 32
	for i := 0; i < len(b.items); i++ {
		it := &b.items[i]
		line := len(it.subj) + len(it.reply)
		if it.op == opSubscribe {
			line += len(n.out.group)
		}
		if line > maxLine {
			n.stats.TooLong.Add(1)
			continue
		}
		switch it.op {
		case opPublish:
			data := b.arena[it.off : it.off+it.n]
			if it.pack {
				if k := packRun(b.items[i:], limit); k > 1 {
					n.out.frame = appendFrame(n.out.frame[:0], b.arena, b.items[i:i+k])
					data = n.out.frame
					n.stats.Frames.Add(1)
					n.stats.FramedEnvelopes.Add(uint64(k))
					i += k - 1
				}
			}
			var err error
			if it.reply == "" {
				err = nc.Publish(it.subj, data)
			} else {
				err = nc.PublishRequest(it.subj, it.reply, data)
			}
			if err != nil {
				n.stats.PublishErrors.Add(1)
				n.log.Debug("mesh: publish failed", "subject", it.subj, "err", err)
			}
		case opSubscribe:
			// A queue subscription in the node's own group: NATS
			// delivers each event once to the node, however many of
			// its subjects match (eventQueue).
			sub, err := nc.ChanQueueSubscribe(it.subj, n.out.group, n.evCh)
			if err != nil {
				n.log.Error("mesh: subscribing failed", "subject", it.subj, "err", err)
				continue
			}
			it.ent.sub = sub
		case opUnsubscribe:
			if it.ent.sub != nil {
				it.ent.sub.Unsubscribe()
				it.ent.sub = nil
			}
		}
	}
}

// interest is one NATS subscription for event subjects, shared by the
// WAMP subscriptions that map to it: a queue subscription in the node's
// group (eventQueue), so that its overlapping subjects (prefixes at every
// level of a topic, a pattern and an exact topic, the realm's subject
// while it widens or narrows) bring each event once, not once each. sub
// is owned by the sender.
type interest struct {
	n   int // guarded by Node.imu
	sub *nats.Subscription
}
