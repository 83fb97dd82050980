package loop

import (
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	gnetqueue "github.com/panjf2000/gnet/v2/pkg/queue"
	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
	"github.com/edgewamp/edgewamp/route"
)

// loopState is one event loop's share of the engine: its router shard, its
// connections and the connections with output pending. Owned by the loop
// goroutine, except Execute.
type loopState struct {
	e     *Engine
	el    gnet.EventLoop // static
	shard *route.Shard   // static

	conns   []*conn // every open connection (index = conn.idx)
	dirty   []*conn // connections with output to flush
	pool    [][]byte
	pooled  int // bytes of capacity in pool
	poolLow int // the fewest bytes pooled since the last scan (trimPool)
	poolMax int // static: the most bytes pooled (poolCap)
	keepMax int // static: the largest buffer pooled (outBufKeep)

	// Large frames (large.go).
	chunks  [][]byte // pooled chunks
	bigBuf  []byte   // assembly buffer
	bigUsed bool     // a large frame was handled since the last scan

	// Batches routed a turn at a time (batch.go).
	batches     []*conn                      // connections whose batch has messages left, in turn order
	batchFn     func()                       // static: runBatches
	batchQueued bool                         // runBatches is queued (or running)
	batchWait   bool                         // runBatches waits for the loop's next callback (gnet has events)
	gnetEpfd    int                          // gnet's epoll descriptor (gnetBusy); -1 when unknown
	gnetEfd     int                          // gnet's eventfd, in gnetEpfd
	gnetQueues  [2]*gnetqueue.AsyncTaskQueue // gnet's task queues (tasksWaiting); nil when unknown
	gnetEvents  [16]unix.EpollEvent          // gnetBusy's

	// Write path state (flush.go).
	depth       int           // entry points of ours running (nested: OnTraffic inside nothing, closes inside flushes)
	flushing    bool          // a flush walk is running
	flushFn     gnet.Runnable // static: the end-of-round flush task
	flushQueued bool          // a round flush task is queued
	lastActive  int64         // monotime at the end of the last callback
	idle        bool          // the current callback started after an idle spell

	// Output produced since the last flush, in the router-wide output
	// budget (budget.go: countPending): pendLocal bytes not yet added to
	// Engine.outbound, pendShared bytes added (taken out again by flush).
	pendLocal, pendShared int64

	laneReader // HTTPLane request heads (lane.go)

	// io_uring send backend (sendring.go); ring is nil on the write(2) path.
	ring  *uring.Ring
	batch []ringSend // the batch being completed, reused

	parker *parker // parking (park.go); nil: the loop waits in epoll_wait

	// Balancing (accept.go), read by the acceptors: the connections this
	// loop holds (nconns, kept by add and remove) and those enrolled to it
	// whose OnOpen has not returned yet (pending: raised by the acceptor,
	// lowered as OnOpen returns, or by the acceptor when gnet failed to
	// register the connection).
	nconns  atomic.Int32
	pending atomic.Int32
}

func (ls *loopState) add(cn *conn) {
	cn.idx = len(ls.conns)
	ls.conns = append(ls.conns, cn)
	ls.nconns.Add(1)
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
	ls.nconns.Add(-1)
}

// scan checks every connection's deadlines (handshake, keepalive, idle,
// close) and releases the TLS buffers of connections idle since the last
// scan (tlstrim.go) and the output buffers the pool did not need
// (trimPool). It runs once a second on the loop, through Execute, whose flush
// writes the pings and closes the connections that are due. The walk writes
// nothing and closes nothing, so the list it walks does not change under
// it (flush.go).
func (ls *loopState) scan() {
	now := ls.e.now()
	ls.batchesAfterCallback() // in case no callback came (batch.go)
	ls.trimLarge()
	ls.trimPool()
	pressed := ls.e.inboundPressed()
	for i := 0; i < len(ls.conns); i++ {
		cn := ls.conns[i]
		cn.deadlines(now)
		if cn.trimStash() {
			cn.account() // smaller: closes nothing
		}
		if cn.held != 0 || cn.stale != 0 {
			cn.judgeStale(now)
		}
		if pressed {
			cn.stalled(now)
		} else if cn.held != 0 {
			cn.progGot, cn.progAt = cn.got, now // progress is judged under pressure only
		}
		cn.accountOut() // gnet drains outbound buffers without telling us
		if cn.tls != nil {
			cn.tls.idle()
		}
	}
	// The total is judged once every connection of the loop has had what
	// gnet drained counted: a reader that took a large result in full
	// still held it in the total until its turn above, and a connection
	// past high_water was closed for output held nowhere (a 256 KiB
	// backlog closed under a 2 MiB budget, 0 KiB held).
	if out := ls.e.outbound.Load(); out > ls.e.opts.MaxOutboundTotal {
		ls.squeeze(out) // largest backlogs first
	}
}
