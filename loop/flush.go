package loop

import (
	"context"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The write path: how output reaches a socket, and what a write error does.
//
// Producing output. Everything a loop sends (router messages through
// conn.Send, pongs, pings, handshake replies, HTTP answers, close frames)
// is appended to the connection's pending output, conn.out, a buffer
// borrowed from the loop's pool, and the connection is put on the loop's
// dirty list (markDirty). Producing output never writes and never closes.
//
// Writing. Bytes reach a socket in two places only:
//
//   - loopState.flush walks the dirty list and hands each connection's
//     pending output to conn.flush, which gives it to the send backend
//     (conn.write: gnet's Write today) and, for a connection that is dying,
//     asks the backend to close after those bytes.
//   - conn.spill writes part of the pending output early, in the middle of
//     a burst (see Send), with write(2) on the descriptor. It never closes
//     anything: an error only marks the connection dying.
//
// Who flushes, and when. Each entry point of ours on a loop — an OnTraffic
// callback, a task run through Execute (router mailbox drains, the
// once-a-second scan, the end-of-round flush) — is bracketed by enter and
// exit, and flushes once at its end (OnTraffic may instead queue the
// end-of-round flush, see leave). Nothing else flushes: in particular the
// close handler (conn.closed) never does.
//
// Write errors and synchronous closes. gnet's Write closes the connection
// synchronously when write(2) fails: OnClose, and so conn.closed, runs
// inside conn.write, in the middle of the flush. That is safe because:
//
//   - flush is not re-entrant (and nothing reachable from closed calls it);
//     the walk indexes the dirty list afresh on every step, so entries that
//     closed adds (a detached session's effects on other connections: an
//     ERROR to a caller, a meta event) are written by the same walk;
//   - conn.flush takes the pending output out of the connection before
//     writing, so closed cannot return the buffer being written to the
//     pool (nor the flush return it twice);
//   - closed marks the connection gone (phGone): a gone connection is
//     inert — it takes no output, is never written, spilled or closed
//     again, and its descriptor (which the kernel may already have given
//     to a new connection) is never used;
//   - closed walks nothing and frees only the connection's own state; it
//     leaves the loop's connection list (ls.conns) with a swap-remove, which
//     no walk of that list can meet: the scan, the only walk, writes
//     nothing (its flush runs after it).
//
// A close that gnet starts on its own (end of input, an error writing its
// outbound buffer, a Close task, shutdown) runs closed outside any entry
// point of ours: closed then queues the end-of-round flush so that what the
// detached session produced for others is written.
//
// Closes we request (conn.die) are deferred: the connection is marked
// dying, stays on the dirty list, and conn.flush asks gnet to close it
// after its last bytes (gnet's Close is itself asynchronous: a task on the
// loop), so no request to close takes effect in the middle of a walk.
//
// A second send backend (io_uring sends, issue 15; loop-native TLS,
// issue 16) replaces conn.write: it receives the pending output of one
// connection, once per flush, on the loop goroutine, and must either copy
// what it cannot send at once (as gnet does) or keep the buffer until its
// completion and return it to the pool itself. A backend error ends in
// conn.closed, on the loop goroutine, and never inside a walk of anything
// but the dirty list.
//
// The io_uring backend (sendring.go) batches instead: flush hands it runs
// of the dirty list (flushRing), which it splits into conn.take, one
// io_uring_enter for the whole run, and conn.sent after each completion;
// a connection's bytes in flight (conn.inflight) keep spill off its
// socket. It never holds a buffer past the flush. Any backend sees only
// "the bytes to send for this connection" (conn.out): framing, and TLS
// records once TLS runs on the loop, are produced before. A layer that
// must transform the output at flush time (sealing TLS records from
// plaintext) does it in conn.take, which both backends call first, so
// that neither can send what it has not seen.
//
// TLS (tls.go) sits before the backends, not in place of them: on a TLS
// connection conn.out holds plaintext, and conn.take (both backends) and
// conn.spill first encrypt it (conn.seal) into conn.ct, a pooled buffer of
// ciphertext that also takes what crypto/tls writes on its own (handshake
// flights, alerts, close_notify); the backend is handed conn.ct exactly as
// it is handed conn.out on a plaintext connection. seal runs on the loop,
// never closes anything (a failure only marks the connection dying) and
// never flushes.

// enter starts an entry point on the loop (see the write path above).
func (ls *loopState) enter() { ls.depth++ }

// exit ends an entry point. Where the outermost ends, the loop parks
// (park.go): a task rests at once, an OnTraffic callback queues the
// parking task.
func (ls *loopState) exit() { ls.depth-- }

// idleGap is how long a loop must have had nothing to do for the adaptive
// flush policy to write at once instead of at the end of the round. It must
// exceed the time gnet spends between two callbacks of one busy round (its
// read syscall, several µs on a VM); at 10 µs the policy degenerated into
// writing after every callback on this machine (rpc, 16 callers, 64 B:
// 26k calls/s), at 30 µs it batches under load (52–69k calls/s, p99
// 0.35–0.56 ms) and still writes at once for a lone caller.
const idleGap = 30 * time.Microsecond

// enterTraffic starts an OnTraffic callback.
func (ls *loopState) enterTraffic() {
	ls.enter()
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
		default:
			ls.queueFlush()
		}
	}
	if ls.e.opts.Flush == FlushAdaptive {
		ls.lastActive = ls.e.monotime()
	}
	ls.exit()
	ls.parkAfter()
}

// queueFlush queues the end-of-round flush task unless one is queued:
// gnet runs queued tasks after the events of the current epoll_wait batch.
// If the loop no longer takes tasks (shutdown), it flushes now when that is
// safe (outside any entry point) and otherwise leaves it to the entry
// point's own flush.
func (ls *loopState) queueFlush() {
	if ls.flushQueued {
		return
	}
	ls.flushQueued = true
	if err := ls.el.Execute(context.Background(), ls.flushFn); err != nil {
		ls.flushQueued = false
		if ls.depth == 0 {
			ls.enter()
			ls.flush()
			ls.exit()
		} else {
			ls.flush()
		}
	}
}

func (ls *loopState) roundFlush(context.Context) error {
	ls.flushQueued = false
	ls.enter()
	ls.flush()
	ls.exit()
	ls.rest()
	return nil
}

// Execute implements route.Executor: it runs f on the loop goroutine, then
// flushes the output f produced. Safe for concurrent use. A parking loop
// takes f in its inbox (park.go: post), which wakes it without a system
// call; otherwise f goes in gnet's task queue, in a task it allocates.
func (ls *loopState) Execute(f func()) error {
	if ls.parker != nil {
		return ls.post(f)
	}
	return ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ls.enter()
		f()
		ls.flush()
		ls.exit()
		ls.rest()
		return nil
	}))
}

// Yield implements route.Yielder: it runs f on the loop goroutine after
// the loop has gone back to its connections (a reload's re-check, in
// turns, lets their messages in between). A task queued by a task does
// not wait for that: gnet takes a task queued while its queue is short
// (under its high-priority threshold, 1,024) in its urgent queue, which it
// runs to the end, tasks queued meanwhile included, before it polls; and a
// parking loop's inbox, posted to from gnet's round, goes there too. So f
// is queued from a timer, yieldDelay later, by when the loop has finished
// the task that yielded and looked at its sockets (gnet polls after its
// tasks; a parking loop checks them before its inbox): the events waiting
// there are handled before f, at the cost of yieldDelay per turn.
func (ls *loopState) Yield(f func()) error {
	time.AfterFunc(yieldDelay, func() { _ = ls.Execute(f) }) // an error: the engine stops, and the shard's sessions go with it
	return nil
}

// yieldDelay is how long Yield waits before it queues its task.
const yieldDelay = 50 * time.Microsecond

// markDirty queues cn for the next flush. A gone connection takes no
// output.
func (ls *loopState) markDirty(cn *conn) {
	if !cn.dirty && cn.phase != phGone {
		cn.dirty = true
		ls.dirty = append(ls.dirty, cn)
	}
}

// flush writes every dirty connection's pending output: one write per
// connection per flush, however many messages it got. It is not
// re-entrant: a call from inside a flush (which nothing should make)
// returns at once, leaving the work to the walk in progress.
func (ls *loopState) flush() {
	if ls.flushing {
		return
	}
	ls.flushing = true
	// The length is read on every step: a connection closed synchronously
	// by its write (conn.closed) may add others to the list, and they are
	// written by this walk. With a ring, runs of ringMinBatch connections
	// or more go out as io_uring batches (sendring.go).
	for i := 0; i < len(ls.dirty); {
		if ls.ring != nil && len(ls.dirty)-i >= ringMinBatch {
			i = ls.flushRing(i)
			continue
		}
		cn := ls.dirty[i]
		ls.dirty[i] = nil
		cn.dirty = false
		i++
		cn.flush()
	}
	ls.dirty = ls.dirty[:0]
	ls.pendingFlushed()
	ls.flushing = false
}

// Output buffers. A connection borrows one only while it has output
// pending (an idle connection holds none) and returns it after its flush.
// Under load every connection of a busy loop can be dirty within one round,
// and a round can give each of them a lot: a publisher's read of 3,000
// publications fanned out to 100 subscribers grows 100 buffers to about
// 256 KiB (Send spills past HighWater), 300 publications to 1,000
// subscribers grow 1,000 buffers to 32 KiB. The pool must keep buffers of
// that size and that many, or every round allocates them anew and grows
// each through a dozen sizes into fresh pages: with buffers over 64 KiB
// never kept and the pool capped at 4 MiB, page faults, zeroing, the
// scavenger's madvise and garbage collection took 70 % of the router's CPU
// at saturation, and pubsub 1 -> 100 delivered 2.2 M events/s instead of
// 8.5 M (bench/RESULTS.md). An earlier pool of 64 × 16 KiB buffers ran dry
// at 128 callers the same way.
//
// So the pool keeps buffers up to loopState.keepMax bytes each (outBufKeep:
// twice HighWater, within [64 KiB, poolMax/8]) and up to loopState.poolMax
// in all per loop (poolCap: a quarter of MaxOutboundTotal shared by the
// loops, within [4 MiB, 64 MiB]; 8 MiB a loop on a 512 MiB box with 4
// cores), and gives back what load no longer needs: it tracks the fewest
// bytes it held since the last scan (poolLow), and the once-a-second scan
// releases that many, the least recently used first (trimPool). A loop
// that served a burst holds its buffers for one to two seconds after it
// and then none; a steady load keeps what its rounds use.
const (
	outBufNew    = 2 << 10  // capacity of a new buffer; append grows it
	outBufMinMax = 64 << 10 // the least outBufKeep gives
	poolMinBytes = 4 << 20  // the least poolCap gives a loop
	poolMaxBytes = 64 << 20 // the most poolCap gives a loop
)

// poolCap is the most bytes each of loops loops keeps pooled, given the
// router-wide output budget.
func poolCap(outboundTotal int64, loops int) int {
	return int(min(max(outboundTotal/4/int64(max(loops, 1)), poolMinBytes), poolMaxBytes))
}

// outBufKeep is the largest buffer a pool of poolMax bytes keeps, given
// the connections' high-water mark: a fast peer's buffer grows to about
// HighWater before Send spills it, and append may have grown its capacity
// past that.
func outBufKeep(highWater, poolMax int) int {
	return max(min(2*highWater, poolMax/8), outBufMinMax)
}

func (ls *loopState) getBuf() []byte {
	if n := len(ls.pool); n > 0 {
		b := ls.pool[n-1]
		ls.pool[n-1] = nil
		ls.pool = ls.pool[:n-1]
		ls.pooled -= cap(b)
		ls.poolLow = min(ls.poolLow, ls.pooled)
		return b
	}
	return make([]byte, 0, outBufNew)
}

func (ls *loopState) putBuf(b []byte) {
	if c := cap(b); c >= outBufNew && c <= ls.keepMax && ls.pooled+c <= ls.poolMax {
		ls.pool = append(ls.pool, b[:0])
		ls.pooled += c
	}
}

// trimPool releases the pooled buffers no flush needed since the last
// call: poolLow bytes' worth, from the bottom of the pool (getBuf takes
// from the top, so the bottom is what has waited longest). It runs from
// the scan.
func (ls *loopState) trimPool() {
	drop, k := 0, 0
	for k < len(ls.pool) && drop+cap(ls.pool[k]) <= ls.poolLow {
		drop += cap(ls.pool[k])
		k++
	}
	if k > 0 {
		n := copy(ls.pool, ls.pool[k:])
		clear(ls.pool[n:])
		ls.pool = ls.pool[:n]
		ls.pooled -= drop
		if len(ls.pool) == 0 {
			ls.pool = nil // the slice of a large pool goes too
		}
	}
	ls.poolLow = ls.pooled
}

// buf returns the output buffer, borrowing one from the loop's pool.
func (cn *conn) buf() []byte {
	if cn.out == nil {
		cn.out = cn.ls.getBuf()
	}
	return cn.out
}

// pingBuf gives a connection about to get a keepalive ping, and holding no
// output, a buffer of the ping's size when the pool has none to lend. The
// scan pings every connection idle for PingInterval; connections that
// joined together go idle together, and the round's flush holds every
// buffer until the round ends. Without this an idle router allocated a
// new 2 KiB buffer for each of them every PingInterval, only for trimPool
// to drop them again: 10 MB of garbage every 30 s for 5,000 sessions,
// which took the router's RSS from 31 to 52 MB in 100 s of idling. putBuf
// does not pool the small buffer: a frame that follows the ping in the
// same round grows it by append, as any buffer.
func (cn *conn) pingBuf() {
	if cn.out == nil && len(cn.ls.pool) == 0 {
		cn.out = make([]byte, 0, pingFrameMax)
	}
}

// pingFrameMax is the size of the router's keepalive ping, the larger of
// the two framings: a WebSocket ping without payload is 2 bytes, a
// RawSocket PING frame 4 and its payload (rawPingPayload).
const pingFrameMax = 4 + len(rawPingPayload)

// writeNow queues bytes that precede any framing (HTTP responses,
// RawSocket handshake replies).
func (cn *conn) writeNow(b []byte) {
	if cn.phase == phGone {
		return
	}
	cn.out = append(cn.buf(), b...)
	cn.ls.markDirty(cn)
}

// spill writes as much of the pending output as the socket takes now, in
// the middle of a loop iteration, without waiting for the loop's flush.
//
// It writes to the file descriptor itself rather than through gnet's
// Write, which on a write error closes the connection synchronously: its
// OnClose would detach the session from inside the router's Send. Here a
// write error only marks the connection dying; the flush closes it once
// the router is done. spill writes only while gnet's outbound buffer is
// empty (otherwise the socket is known to be full, and writing around the
// buffer would reorder bytes), and never on a gone connection (its
// descriptor may belong to another connection by now). On a TLS connection
// it encrypts the pending output first (seal) and writes ciphertext; what
// the socket does not take stays in conn.ct.
func (cn *conn) spill() {
	if cn.phase == phGone || cn.c.OutboundBuffered() > 0 {
		return
	}
	if cn.inflight > 0 {
		// An io_uring batch is completing, and what this connection's
		// send left over is not in gnet's buffer yet: writing now would
		// put these bytes before it.
		cn.full = true
		return
	}
	// Send counted the plaintext as the round's pending output; what the
	// socket takes now is no longer pending. On TLS the socket takes
	// ciphertext: the plaintext sealed into it is credited (the records'
	// overhead makes that a slight overestimate; the count never goes
	// below zero). Before, a TLS connection credited nothing, and copies
	// of large events that subscribers had read kept the budget full.
	plain := len(cn.out)
	p := &cn.out
	if cn.tls != nil {
		cn.seal()
		p = &cn.ct
	}
	if len(*p) == 0 {
		return
	}
	n, err := unix.Write(cn.c.Fd(), *p)
	if n > 0 {
		cn.ls.spilled(min(n, plain))
	}
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		cn.full = true
	case err != nil:
		*p = (*p)[:0]
		cn.die(CloseReset, err)
	case n < len(*p):
		*p = (*p)[:copy(*p, (*p)[n:])]
		cn.full = true
	default:
		*p = (*p)[:0]
	}
}

// flush hands the pending output to the send backend and, when the
// connection is dying, asks for the close after it. See the write path
// above: the write may close the connection synchronously.
func (cn *conn) flush() {
	out, ok := cn.take()
	if !ok {
		return
	}
	if len(out) > 0 {
		cn.write(out)
	}
	cn.sent(out)
}

// take takes the pending output out of the connection for the send
// backend, which owns it until sent; ok is false when there is nothing to
// do (no output, not dying, or gone). Both backends call it first: on a
// TLS connection it seals the pending plaintext (seal) and takes the
// ciphertext instead, so that no backend can send plaintext.
func (cn *conn) take() (out []byte, ok bool) {
	cn.full = false
	if cn.phase == phGone {
		return nil, false
	}
	if cn.tls != nil {
		pending := cn.out != nil || cn.ct != nil
		// What seal queues (queueCT) or a failure it marks (die) is taken
		// by this call: the connection is not put on the dirty list again.
		cn.dirty = true
		cn.seal()
		cn.dirty = false
		if cn.out != nil { // before the handshake: only die's empty buffer
			cn.ls.putBuf(cn.out)
		}
		cn.out, cn.ct = cn.ct, nil
		if cn.out == nil && pending { // nothing to send, but the close must run (die)
			cn.out = cn.ls.getBuf()
		}
	}
	out = cn.out
	if out == nil {
		return nil, false
	}
	cn.out = nil // owned by the flush until the backend is done with it
	return out, true
}

// sent ends a flush of the connection once the backend is done with out:
// the buffer goes back to the pool (out may be nil), the queued output is
// counted, and a dying connection is closed after its last bytes. The
// write may have closed the connection (phGone): then only the buffer is
// returned.
func (cn *conn) sent(out []byte) {
	cn.ls.putBuf(out)
	if cn.phase == phGone {
		return // the write failed and gnet closed the connection
	}
	cn.accountOut()
	if cn.lane != nil && cn.lane.written != nil {
		cn.laneWritten()
	}
	if cn.phase == phDead {
		if cn.linger() {
			return
		}
		if cn.abort {
			cn.resetOnClose()
		}
		cn.c.Close() // asynchronous: a task on this loop
	}
}

// A session's last output can be more than the socket takes at once: a
// result or events the peer had not read yet when it said GOODBYE, sent a
// WebSocket Close frame or was killed, then the router's GOODBYE or Close
// frame, on TLS close_notify. gnet keeps what the socket did not take in
// its outbound buffer, and its close writes that buffer only as far as
// the socket takes it at that moment, then drops the rest: the peer read a
// message cut short and EOF, without the GOODBYE or the Close frame it
// waits for (a caller that said GOODBYE, or closed its WebSocket, before
// reading the 512 KiB result it asked for; over TLS no close_notify
// either: a truncation). So a connection whose session ended (the router
// ended it, CloseSession; the peer started the WebSocket closing
// handshake, CloseWSClose, or sent its TLS close_notify; not one closed
// for not reading, abort) lingers
// while gnet holds its output: its session leaves at once (Detach; a
// callee's calls go elsewhere), nothing more is read (input is dropped),
// and the scan closes it once gnet has written everything, or with a
// reset (abort) once its peer took less than lingerProgress in a
// lingerStep, or takes it while the router's output is over
// max_outbound_total (the squeeze passes dying connections by).
const (
	lingerStep     = 2 * time.Second
	lingerProgress = 16 << 10
)

// linger reports whether the dying connection waits for gnet to write its
// output before it is closed (sent). It may run inside a flush (as
// closed does): the session's departure only adds to the dirty list.
func (cn *conn) linger() bool {
	switch {
	case cn.abort:
		return false
	case cn.reason == CloseSession, cn.reason == CloseWSClose:
	case cn.reason == ClosePeer && cn.tls != nil && cn.tls.eof:
		// The peer's close_notify closes its write side only ([RFC 8446
		// §6.1]: "Both parties need not wait to receive a close_notify
		// alert before closing their read side").
	default:
		return false
	}
	ob := cn.c.OutboundBuffered()
	if ob == 0 {
		return false
	}
	if !cn.lingering {
		cn.lingering = true
		cn.ls.e.lingering.Add(1)
		cn.closeBy, cn.closeLeft = cn.ls.e.now()+int64(lingerStep), int64(ob)
		if cn.sess != nil {
			cn.ls.shard.Detach(cn.sess) // again, a no-op, when it closes (leave)
		}
		cn.dropInput()
		if cn.pong != nil {
			// A waiting pong is sent to an open session only
			// (sendWaitingPong): it leaves max_outbound_total now, not at
			// the close (a RawSocket PING may carry max_message).
			cn.pong = nil
			cn.accountOut()
		}
	}
	return true
}

// dropInput lets go of the partial input of a connection that starts to
// linger: it reads nothing more, so the message it was receiving (a
// fragmented message's first fragments, a large frame's chunks, a stash,
// decrypted TLS input, a batch's rest for a session that has left) can
// never be finished, and it leaves max_inbound_total at once. Before, it
// stayed held and counted until the close, as long as the peer took
// 16 KiB every 2 s, and neither the stall check nor the shed closes a
// dying connection (budget.go): a WebSocket client that sent 300 KiB of a
// fragmented message and then its Close frame (a TLS one 300 KiB of a
// frame and close_notify), a result it did not read behind it, kept the
// 300 KiB counted for as long as it lingered.
func (cn *conn) dropInput() {
	cn.wsr.frag, cn.wsr.fragOp = nil, ws.OpContinuation
	cn.dropBig()
	cn.dropBatch()
	if s := cn.st; s != nil {
		s.b, s.r = nil, 0
	}
	if cn.tls != nil {
		cn.tls.plain.drop(cn.ls)
	} else {
		cn.in = cn.c
	}
	cn.account()
}

// lingered judges a lingering connection (the scan; due: Shutdown's wait,
// whatever closeBy says): closed once gnet has written its output, reset
// once its peer stops taking it (or takes it while the router's output is
// over max_outbound_total).
func (cn *conn) lingered(now int64, due bool) {
	ob := int64(cn.c.OutboundBuffered())
	switch {
	case ob == 0:
	case !due && now < cn.closeBy:
		return
	case cn.closeLeft-ob >= lingerProgress && cn.ls.e.outbound.Load() <= cn.ls.e.opts.MaxOutboundTotal:
		// Still reading, and the router's output is within its budget.
		cn.closeBy, cn.closeLeft = now+int64(lingerStep), ob
		return
	default:
		cn.abort = true
		cn.resetOnClose()
		cn.ls.e.lingerResets.Add(1)
	}
	cn.endLinger()
	cn.c.Close() // asynchronous: a task on this loop
}

// endLinger ends a connection's linger: closed by lingered, or by gnet.
func (cn *conn) endLinger() {
	cn.lingering = false
	cn.ls.e.lingering.Add(-1)
}

// awaitLingering runs in Shutdown, once the sessions have ended: it waits,
// within ctx, for the connections that linger to have their output
// written, closing each once it is (the scan does once a second) and
// judging their progress every lingerStep of its own (the engine's clock
// may be a test's). Before, the loops stopped as soon as the sessions had
// left, and gnet's close cut what a lingering connection's socket had not
// taken: a session ended by the shutdown's GOODBYE, its reply not come
// within GoodbyeTimeout because its client was still reading a 512 KiB
// result, read part of the RESULT and EOF, without the GOODBYE.
func (e *Engine) awaitLingering(ctx context.Context) {
	if e.lingering.Load() == 0 {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	next := time.Now().Add(lingerStep)
	for e.lingering.Load() > 0 {
		due := time.Now().After(next)
		if due {
			next = next.Add(lingerStep)
		}
		for _, ls := range e.allLoops() {
			_ = ls.Execute(func() { ls.lingerCheck(due) }) // an error: the loops stop, closing every connection
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lingerCheck closes the loop's lingering connections whose output is
// written, and with due judges the others (lingered). It closes nothing
// during the walk (gnet's Close is a task).
func (ls *loopState) lingerCheck(due bool) {
	now := ls.e.now()
	for _, cn := range ls.conns {
		if cn.lingering && cn.phase == phDead && (due || cn.c.OutboundBuffered() == 0) {
			cn.lingered(now, due)
		}
	}
}

// resetOnClose makes the close of a connection whose peer does not take
// its output (a slow consumer, an unanswered keepalive, a closing
// handshake not answered) a reset: SO_LINGER with a zero timeout, so that
// close(2) drops what the kernel still holds for the peer and sends RST.
// A plain close left that send queue to the kernel, as an orphaned socket
// whose FIN waits behind it, for as long as the peer kept its window
// closed: the socket's send buffer, which the kernel grows up to
// tcp_wmem's maximum (4 MiB by default) and the router does not count,
// past the connection's hard_limit (10 slow callers closed at a 1 MiB
// hard_limit left 27 MiB in 10 such sockets). Nothing of what is lost
// would have been read. A connection whose send queue is empty (all sent
// and acknowledged: a dead peer's keepalive, a peer that read everything
// but never answered our close frame) is closed plainly, with a FIN.
func (cn *conn) resetOnClose() {
	fd := cn.c.Fd()
	if n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ); err == nil && n == 0 {
		return
	}
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// unsent is the output the peer has not taken: the connection's backlog
// and what the kernel's send queue holds (SIOCOUTQ: not sent, or not
// acknowledged).
func (cn *conn) unsent() int64 {
	n := int64(cn.backlog())
	if q, err := unix.IoctlGetInt(cn.c.Fd(), unix.SIOCOUTQ); err == nil {
		n += int64(q)
	}
	return n
}

// write is the send backend: gnet's Write, which writes what the socket
// takes and copies the rest into the connection's outbound buffer (written
// when the socket is writable). On a write error gnet closes the
// connection before Write returns (conn.closed records the error as the
// reason). out may be reused once write returns.
func (cn *conn) write(out []byte) {
	cn.c.Write(out)
	if pk := cn.ls.parker; pk != nil && cn.phase != phGone && cn.c.OutboundBuffered() > 0 {
		pk.out[cn.c.Fd()] = cn // park writes it when the socket takes more (park.go)
	}
}
