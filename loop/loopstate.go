package loop

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/route"
)

// loopState is one event loop's share of the engine: its router shard, its
// connections and the connections with output pending. Owned by the loop
// goroutine, except Execute.
type loopState struct {
	e     *Engine
	el    gnet.EventLoop // static
	shard *route.Shard   // static

	conns  []*conn // every open connection (index = conn.idx)
	dirty  []*conn // connections with output to flush
	pool   [][]byte
	pooled int // bytes of capacity in pool

	// Flush policy state (see enter/leave).
	flushFn     gnet.Runnable // static: the end-of-round flush task
	flushQueued bool          // a round flush task is queued
	lastActive  int64         // monotime at the end of the last callback
	idle        bool          // the current callback started after an idle spell
}

// idleGap is how long a loop must have had nothing to do for the adaptive
// flush policy to write at once instead of at the end of the round. It must
// exceed the time gnet spends between two callbacks of one busy round (its
// read syscall, several µs on a VM); at 10 µs the policy degenerated into
// writing after every callback on this machine (rpc, 16 callers, 64 B:
// 26k calls/s), at 30 µs it batches under load (52–69k calls/s, p99
// 0.35–0.56 ms) and still writes at once for a lone caller.
const idleGap = 30 * time.Microsecond

// enter starts an OnTraffic callback.
func (ls *loopState) enter() {
	if ls.e.opts.Flush == FlushAdaptive {
		ls.idle = ls.e.monotime()-ls.lastActive > int64(idleGap)
	}
}

// leave ends an OnTraffic callback. The output it produced is written now
// (policy traffic, or adaptive after an idle spell: sparse traffic gets the
// lowest latency) or at the end of the loop's round (policy round, or
// adaptive under load), so that a connection receiving from many others —
// a callee of 16 callers, a subscriber of many publishers — gets one write
// per round instead of one per message: on loopback a write also runs the
// receiver's TCP work, and it is most of the router's CPU (DESIGN §9).
func (ls *loopState) leave() {
	if len(ls.dirty) > 0 {
		switch {
		case ls.e.opts.Flush == FlushTraffic, ls.e.opts.Flush == FlushAdaptive && ls.idle:
			ls.flush()
		case !ls.flushQueued:
			// gnet runs queued tasks after the events of the current
			// epoll_wait batch: the end of the round.
			ls.flushQueued = true
			if err := ls.el.Execute(context.Background(), ls.flushFn); err != nil {
				ls.flushQueued = false
				ls.flush()
			}
		}
	}
	if ls.e.opts.Flush == FlushAdaptive {
		ls.lastActive = ls.e.monotime()
	}
}

func (ls *loopState) roundFlush(context.Context) error {
	ls.flushQueued = false
	ls.flush()
	return nil
}

// Execute implements route.Executor: it runs f on the loop goroutine, then
// flushes the output f produced. Safe for concurrent use.
func (ls *loopState) Execute(f func()) error {
	return ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f()
		ls.flush()
		return nil
	}))
}

func (ls *loopState) add(cn *conn) {
	cn.idx = len(ls.conns)
	ls.conns = append(ls.conns, cn)
}

func (ls *loopState) remove(cn *conn) {
	i := cn.idx
	if i < 0 || i >= len(ls.conns) || ls.conns[i] != cn {
		return
	}
	last := len(ls.conns) - 1
	ls.conns[i] = ls.conns[last]
	ls.conns[i].idx = i
	ls.conns[last] = nil
	ls.conns = ls.conns[:last]
	cn.idx = -1
}

// markDirty queues cn for the next flush.
func (ls *loopState) markDirty(cn *conn) {
	if !cn.dirty {
		cn.dirty = true
		ls.dirty = append(ls.dirty, cn)
	}
}

// flush writes every dirty connection's pending output: one write per
// connection per loop iteration, however many messages it got.
func (ls *loopState) flush() {
	for i := 0; i < len(ls.dirty); i++ { // flushing may not add, but be safe
		cn := ls.dirty[i]
		ls.dirty[i] = nil
		cn.dirty = false
		cn.flush()
	}
	ls.dirty = ls.dirty[:0]
}

// Output buffers. A connection borrows one only while it has output
// pending (an idle connection holds none) and returns it after its flush.
// Under load every connection of a busy loop can be dirty within one round,
// so the pool must cover hundreds of them: it keeps buffers up to
// outBufMaxKeep bytes each and poolMaxBytes in all per loop (an earlier
// pool of 64 × 16 KiB buffers ran dry at 128 callers and allocated
// 280 MB/s of fresh buffers, the garbage collector's main work).
const (
	outBufNew     = 2 << 10  // capacity of a new buffer; append grows it
	outBufMaxKeep = 64 << 10 // larger buffers go to the garbage collector
	poolMaxBytes  = 4 << 20  // most bytes a loop keeps pooled
)

func (ls *loopState) getBuf() []byte {
	if n := len(ls.pool); n > 0 {
		b := ls.pool[n-1]
		ls.pool[n-1] = nil
		ls.pool = ls.pool[:n-1]
		ls.pooled -= cap(b)
		return b
	}
	return make([]byte, 0, outBufNew)
}

func (ls *loopState) putBuf(b []byte) {
	if c := cap(b); c <= outBufMaxKeep && ls.pooled+c <= poolMaxBytes {
		ls.pool = append(ls.pool, b[:0])
		ls.pooled += c
	}
}

// scan checks every connection's deadlines (handshake, keepalive, idle,
// close). It runs once a second on the loop, through Execute, whose flush
// writes the pings and closes the connections that are due.
func (ls *loopState) scan() {
	now := ls.e.now()
	for i := 0; i < len(ls.conns); i++ {
		cn := ls.conns[i]
		cn.deadlines(now)
		cn.accountOut() // gnet drains outbound buffers without telling us
	}
}
