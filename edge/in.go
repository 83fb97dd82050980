package edge

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// The event receive side. nats.go hands the messages of the node's event
// subscriptions to one channel (evCh) from its connection's reader
// goroutine, without ever blocking it (a full channel is a slow-consumer
// drop); that goroutine also delivers the heartbeats and calls, so
// nothing may hold it. The channel is bounded in messages only, and a
// message may be a 24 MiB event: 16,384 of them could hold hundreds of
// GiB for an event dispatcher that does not keep up (a stalled loop, a
// node flooded with large events).
//
// So the pump goroutine moves each message at once from the channel into
// inq, a queue bounded in bytes (Options.MaxInbound), or drops it there,
// counted (Stats.InboundFull), when the queue holds too many bytes. It
// does nothing else, so the channel stays near empty: the bound holds
// for what waits for the dispatcher, which takes the queue's messages a
// batch at a time.

// msgOverhead is what a queued message costs besides its bytes (the
// nats.Msg, its headers map and slice headers), so that a flood of empty
// messages is bounded too.
const msgOverhead = 160

func msgCost(m *nats.Msg) int64 {
	return int64(len(m.Data)+len(m.Subject)+len(m.Reply)) + msgOverhead
}

// inq is the queue between the pump and the event dispatcher.
type inq struct {
	mu    sync.Mutex
	msgs  []*nats.Msg // guarded by mu
	bytes int64       // guarded by mu: the cost of msgs and of the batch the dispatcher works on
	peak  int64       // guarded by mu: the highest bytes seen (tests)
	taken uint64      // guarded by mu: messages queued since the start (tests)
	max   int64       // static
	wake  chan struct{}
}

func newInq(max int64) *inq {
	return &inq{max: max, wake: make(chan struct{}, 1)}
}

// push queues ms in order, each unless the queue would pass its bound;
// it returns how many it dropped. Pump goroutine; never blocks.
func (q *inq) push(ms []*nats.Msg) (dropped int) {
	q.mu.Lock()
	for _, m := range ms {
		c := msgCost(m)
		if q.bytes+c > q.max {
			dropped++
			continue
		}
		q.msgs = append(q.msgs, m)
		q.bytes += c
		q.taken++
	}
	q.peak = max(q.peak, q.bytes)
	q.mu.Unlock()
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
	q.mu.Lock()
	ms := q.msgs
	q.msgs = spare[:0]
	q.mu.Unlock()
	return ms
}

// done uncounts the bytes of a batch the dispatcher has handled.
func (q *inq) done(cost int64) {
	q.mu.Lock()
	q.bytes -= cost
	q.mu.Unlock()
}

// queued returns the bytes counted now, the highest count seen and the
// messages queued since the start.
func (q *inq) queued() (bytes, peak int64, taken uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, q.peak, q.taken
}

// pumpBatch bounds the messages the pump moves under one lock.
const pumpBatch = 256

// runPump is the pump goroutine: it drains evCh into inq.
func (n *Node) runPump() {
	defer n.wg.Done()
	batch := make([]*nats.Msg, 0, pumpBatch)
	for {
		select {
		case <-n.stop:
			return
		case m := <-n.evCh:
			batch = append(batch, m)
		}
	more:
		for len(batch) < pumpBatch {
			select {
			case m := <-n.evCh:
				batch = append(batch, m)
			default:
				break more
			}
		}
		if d := n.in.push(batch); d > 0 {
			n.stats.InboundFull.Add(uint64(d))
		}
		clear(batch)
		batch = batch[:0]
	}
}

// runEvents is the event dispatcher: it drops the copies overlapping
// subscriptions deliver and hands each event to the router once.
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
			for _, m := range ms {
				cost += msgCost(m)
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
