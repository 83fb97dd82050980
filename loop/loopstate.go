package loop

import (
	"context"

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

	conns []*conn // every open connection (index = conn.idx)
	dirty []*conn // connections with output to flush
	pool  [][]byte
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

// outBufCap is the capacity of pooled output buffers; larger ones are not
// kept, so an idle connection holds no output buffer.
const outBufCap = 16 << 10

func (ls *loopState) getBuf() []byte {
	if n := len(ls.pool); n > 0 {
		b := ls.pool[n-1]
		ls.pool = ls.pool[:n-1]
		return b
	}
	return make([]byte, 0, outBufCap)
}

func (ls *loopState) putBuf(b []byte) {
	if cap(b) == outBufCap && len(ls.pool) < 64 {
		ls.pool = append(ls.pool, b[:0])
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
	}
}
