package edge

import (
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/route"
)

// The receive side. nats.go hands the messages of the node's
// subscriptions to two channels from its connection's reader goroutine,
// without ever blocking it (a full channel is a slow-consumer drop): evCh
// for the events, ctlCh for the rest (calls, results and frames of them,
// directory, heartbeats, gathers). That goroutine brings the heartbeats
// too, so nothing may hold it. The channels are bounded in messages only,
// and a message may be a 24 MiB event or call: 16,384 of them could hold
// hundreds of GiB for a dispatcher that does not keep up (a stalled
// loop, a long meta query on the control dispatcher, a starved CPU, a
// flood of large events or calls).
//
// So a pump goroutine per channel moves each message at once from the
// channel into a queue bounded in bytes, or drops it there, counted
// (Stats.InboundFull for events, Stats.ControlFull for the rest). It does
// nothing else, so the channels stay near empty: the bound holds for
// what waits for the dispatchers, which take their queue's messages a
// batch at a time. A pump keeps its channel's order, and a dispatcher
// its queue's: what is dropped leaves a gap, never a reordering.
//
// The two queues share one budget, Options.MaxInbound, and one lock: an
// operator sizes one figure for what other nodes can make this node
// hold, the mirror of Options.MaxOutbound. Each message has a class,
// which decides how much of the budget it may fill, as on the send side
// (out.go): events, meta queries and gather answers, which clients size
// and repeat at will, three quarters of it; calls, results and their
// frames the whole of it, so that a flood of events leaves them a
// quarter; the lone errors and interrupts that end a call another node
// waits for (route.MeshEndEnvelope, sent by Node.SendEnd) a sixteenth
// past it, so that the calls and results that fill it do not drop the
// one message a caller waits for (one per call: bounded by the calls in
// flight); the other nodes' directory changes and sync answers a reserve
// of an eighth past it, and their heartbeats, goodbyes, sync requests
// and "forgotten" words a quarter past it. So no flood of events or
// calls makes this node drop a heartbeat (which would make it take the
// sender for dead) or a directory message (a resync): what the bound
// drops are the messages whose loss costs a caller its timeout or a meta
// query that node's part (README, "A message can be lost").
//
// The reserves are bounds too, which the peers' own messages only reach
// in a stall far longer than a peer timeout: they are the peers', not
// their clients'. A heartbeat costs at most 256 bytes, and each peer
// sends one per heartbeat period (its timer), a goodbye once a life, a
// "forgotten" word once a rejoin, a sync request at most once per two
// heartbeats: the last eighth of the budget, which only they may fill
// (8 MiB at the default), holds 10 peers' heartbeats for about 28
// minutes of a dispatcher stalled outright, and this node sends its own
// heartbeats from that dispatcher, so its peers took it for dead long
// before. Directory changes come one per registration change at a peer
// (a few hundred bytes); sync answers only in answer to this node's own
// requests (at most one per peer per two heartbeats, none while the
// dispatcher is stalled), each in parts of at most 1 MiB. Past a
// reserve, those messages are dropped too (counted in ControlFull), and
// repaired as any loss is (peers.go): a lost directory change or sync
// part by a resync, after the stall (a directory of more than the
// reserve, 8 MiB at the default, sent while this node is stalled, is
// asked for again then); a lost heartbeat by the next within the peer
// timeout.

// msgOverhead is what a queued message costs besides its bytes (the
// nats.Msg, its headers map and slice headers), so that a flood of empty
// messages is bounded too.
const msgOverhead = 160

func msgCost(m *nats.Msg) int64 {
	n := len(m.Data) + len(m.Subject) + len(m.Reply)
	// The mesh sends no headers; a message that has them (another NATS
	// client, a misbehaving node) holds them with its data: up to the
	// server's max payload, for a few bytes of Data.
	for k, vs := range m.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v) + 16
		}
	}
	return int64(n) + msgOverhead
}

// inClass is what a received message may fill of the inbound budget.
type inClass uint8

const (
	inBulk  inClass = iota // events, meta queries, gather answers: three quarters
	inRoute                // calls, results, chunks, cancels, frames of them: the whole
	inEnd                  // a lone error or interrupt that ends a call (route.MeshEndEnvelope): a sixteenth more
	inDir                  // directory changes and sync answers: an eighth more
	inLive                 // heartbeats, goodbyes, sync requests, "forgotten": a quarter more
	nClasses
)

// controlClass returns the class of a message of the control
// subscriptions (subject.go); me is the node's inbox and a dot.
func controlClass(subj, me string) inClass {
	if len(subj) > len(me) && subj[:len(me)] == me {
		switch subj[len(me):] {
		case "m":
			return inRoute
		case "S":
			return inDir
		case "s", "x", "g":
			return inLive
		}
		return inBulk // a.<id>: an answer to one of this node's gathers
	}
	switch subj {
	case subjHeartbeat, subjBye:
		return inLive
	case subjDelta:
		return inDir
	}
	return inBulk // subjQuery
}

// inbound is the budget the two receive queues share, and their lock.
type inbound struct {
	mu   sync.Mutex
	used int64           // guarded by mu: the bytes of both queues and of the batches their dispatchers work on
	peak int64           // guarded by mu: the highest used seen (tests)
	lim  [nClasses]int64 // static: how many bytes may be used when a message of each class is added
	max  int64           // static: Options.MaxInbound
}

func newInbound(max int64) *inbound {
	return &inbound{max: max, lim: [nClasses]int64{
		inBulk:  max - max/4,
		inRoute: max,
		inEnd:   max + max/16,
		inDir:   max + max/8,
		inLive:  max + max/4,
	}}
}

// inq is the queue between a pump and its dispatcher.
type inq struct {
	b *inbound
	// me is the node's inbox and a dot on the control queue, whose
	// messages are classed by subject; "" on the event queue, whose
	// messages are all inBulk. Static.
	me    string
	msgs  []*nats.Msg      // guarded by b.mu
	bytes int64            // guarded by b.mu: this queue's part of b.used
	peak  int64            // guarded by b.mu: the highest bytes seen (tests)
	taken [nClasses]uint64 // guarded by b.mu: messages queued since the start, by class (tests)
	wake  chan struct{}
}

func newInq(b *inbound, me string) *inq {
	return &inq{b: b, me: me, wake: make(chan struct{}, 1)}
}

// push queues ms in order, each unless the budget would pass its class's
// bound; it returns how many it dropped. Pump goroutine; never blocks.
func (q *inq) push(ms []*nats.Msg) (dropped int) {
	b := q.b
	b.mu.Lock()
	for _, m := range ms {
		c, cl := msgCost(m), inBulk
		if q.me != "" {
			cl = controlClass(m.Subject, q.me)
			if cl == inRoute && route.MeshEndEnvelope(m.Data) {
				// An error or interrupt that ends a call another
				// node's caller (callee) waits for, sent alone
				// (Node.SendEnd): dropped with the calls and results
				// that filled the queue, its caller waited for its
				// timeout, for ever without one.
				cl = inEnd
			}
		}
		if b.used+c > b.lim[cl] && !isGone(m) {
			dropped++
			continue
		}
		q.msgs = append(q.msgs, m)
		q.bytes += c
		b.used += c
		q.taken[cl]++
	}
	q.peak = max(q.peak, q.bytes)
	b.peak = max(b.peak, b.used)
	b.mu.Unlock()
	if dropped < len(ms) {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return dropped
}

// take returns the queued messages and gives the queue spare (emptied) to
// fill next; the messages' bytes stay counted until done. Dispatcher only.
func (q *inq) take(spare []*nats.Msg) []*nats.Msg {
	q.b.mu.Lock()
	ms := q.msgs
	q.msgs = spare[:0]
	q.b.mu.Unlock()
	return ms
}

// done uncounts the bytes of a batch the dispatcher has handled.
func (q *inq) done(cost int64) {
	q.b.mu.Lock()
	q.bytes -= cost
	q.b.used -= cost
	q.b.mu.Unlock()
}

// queued returns the bytes counted now, the highest count seen and the
// messages queued since the start.
func (q *inq) queued() (bytes, peak int64, taken uint64) {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	for _, k := range q.taken {
		taken += k
	}
	return q.bytes, q.peak, taken
}

// takenBy returns the messages queued since the start, by class.
func (q *inq) takenBy() [nClasses]uint64 {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	return q.taken
}

// pumpBatch bounds the messages a pump moves under one lock.
const pumpBatch = 256

// runPump is a pump goroutine: it drains ch into q, counting the drops in
// dropped.
func (n *Node) runPump(ch <-chan *nats.Msg, q *inq, dropped *atomic.Uint64) {
	defer n.wg.Done()
	batch := make([]*nats.Msg, 0, pumpBatch)
	for {
		if ch == n.evCh {
			if h := n.testHookEventPump.Load(); h != nil { // tests only
				(*h)()
			}
		} else if h := n.testHookControlPump.Load(); h != nil { // tests only
			(*h)()
		}
		select {
		case <-n.stop:
			return
		case m := <-ch:
			batch = append(batch, m)
		}
	more:
		for len(batch) < pumpBatch {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break more
			}
		}
		if d := q.push(batch); d > 0 {
			dropped.Add(uint64(d))
		}
		clear(batch)
		batch = batch[:0]
	}
}

// stopEvery+1 is how many messages of a batch a dispatcher handles
// between two looks at Shutdown: a batch holds all that was queued (up
// to MaxInbound), and a node that stops does not deliver it first.
const stopEvery = 63

// batchCost is the inbound cost of ms.
func batchCost(ms []*nats.Msg) (c int64) {
	for _, m := range ms {
		c += msgCost(m)
	}
	return c
}

// runEvents is the event dispatcher: it drops any copy of an event
// already delivered (deliverEvent) and hands each event to the router
// once.
func (n *Node) runEvents() {
	defer n.wg.Done()
	var spare []*nats.Msg
	for {
		select {
		case <-n.stop:
			return
		case <-n.in.wake:
		}
		for {
			ms := n.in.take(spare)
			if len(ms) == 0 {
				spare = ms
				break
			}
			if h := n.testHookEvents.Load(); h != nil { // tests only
				(*h)()
			}
			var cost int64
			for i, m := range ms {
				if i&stopEvery == stopEvery && n.stopped.Load() {
					n.in.done(cost + batchCost(ms[i:]))
					clear(ms)
					return
				}
				cost += msgCost(m)
				if isGone(m) {
					n.goneDelivered(m)
					continue
				}
				if isFrame(m.Data) {
					if unpackFrame(m.Data, n.deliverEvent) != nil {
						n.stats.BadFrames.Add(1)
					}
					continue
				}
				n.deliverEvent(m.Data)
			}
			n.in.done(cost)
			clear(ms)
			spare = ms
		}
	}
}

// goneSubject is the subject of the word a node puts in its own event
// channel when a peer left the mesh (sessionsGone); no NATS message has
// it (the node's event subscriptions are all under its event root).
const goneSubject = "ew.local.gone"

// isGone reports whether m is such a word (not from NATS: no Sub).
func isGone(m *nats.Msg) bool { return m.Sub == nil && m.Subject == goneSubject }

// sessionsGone tells the router, through the event channel, that the
// sessions of p, which left the mesh, are gone (route.MeshSessionsGone:
// their on_leave are announced to this node's subscribers): behind every
// event NATS had handed the node before, so that the on_leave that p sent
// before it left (a clean shutdown sends one per session, then its
// goodbye) are applied first, and not announced again. The word is never
// dropped for the inbound budget (inq.push), nor put ahead of them when the
// channel is full. Control dispatcher.
func (n *Node) sessionsGone(p *peer) {
	// Its slot is set by its heartbeats; a peer that sent something else
	// (an answer, a delta, an on_join the router kept) and died before
	// its first heartbeat has none yet, but every node's slot is derived
	// from its name (route.MeshSlot), and its sessions may be known.
	slot := p.slot
	if slot == 0 {
		slot = route.MeshSlot(p.name)
	}
	var w wr
	w.uv(uint64(p.idx))
	w.uv(uint64(slot))
	m := &nats.Msg{Subject: goneSubject, Data: w}
	select {
	case n.evCh <- m:
	default:
		// The channel is full (its pump starved): the word must still go
		// behind the node's last events, or it overtakes the on_leave of
		// a session that closed just before and that session is announced
		// twice. A goroutine waits for room (at most one per node lost
		// while the channel is full; gone at Shutdown).
		go func() {
			select {
			case n.evCh <- m:
			case <-n.stop:
			}
		}()
	}
}

// goneDelivered hands a sessionsGone word to the router. Event
// dispatcher.
func (n *Node) goneDelivered(m *nats.Msg) {
	r := rd{b: m.Data}
	idx, slot := r.uv(), r.uv()
	if r.err == nil && slot <= route.MaxMeshSlot {
		n.r.MeshSessionsGone(route.MeshNode(idx), uint16(slot))
	}
}
