package loop

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// The io_uring send backend (issue 15).
//
// With it, a flush hands the dirty connections' output to the kernel in
// batches: one IORING_OP_SEND (MSG_DONTWAIT) per connection and one
// io_uring_enter per batch of up to uring.DefaultEntries connections,
// instead of one write(2) each. On this VM a kernel entry is expensive
// (page-table isolation without PCID), and the TCP work of many sends runs
// back to back inside one enter: a fan-out to 1,000 subscribers costs about
// a third of the sender CPU of 1,000 writes (issue 15's measurement).
// Reading stays with gnet's epoll loop.
//
// It slots into the write path of flush.go as a second backend for
// loopState.flush; everything else (producing output, spill, deferred
// closes, phGone) is unchanged. A batch runs in three phases:
//
//  1. take: each connection's pending output is taken out of it (conn.take)
//     and, if gnet holds no buffered output for the connection, queued as
//     a send on the ring; the connection records the bytes in flight
//     (conn.inflight), queued or not. Nothing in this phase writes through gnet or closes
//     anything, so no descriptor queued can be closed (and reused by a new
//     connection) before the enter.
//  2. enter: uring.Ring.Submit submits the batch and waits for every
//     completion: with MSG_DONTWAIT each send completes inside the enter,
//     so every buffer is the loop's again when it returns, and no send is
//     ever in flight outside a flush. Each connection's inflight drops at
//     once to what its socket did not take: output produced for it while
//     the batch completes is judged by that rest (backlog).
//  3. complete, in dirty-list order: what a socket did not take (a short
//     send, -EAGAIN) goes to gnet's Write, which buffers it and waits for
//     EPOLLOUT exactly as on the epoll path (it may try one write(2) first);
//     a connection gnet already held output for is written through gnet
//     the same way (never a ring send around gnet's buffer: bytes would be
//     reordered). A send error (-ECONNRESET, -EPIPE) is recorded as the
//     close reason and the connection is closed the deferred way (gnet's
//     asynchronous Close). gnet's Write may still close a connection
//     synchronously here, exactly as in the epoll walk: every send of the
//     batch has completed by then.
//
// Ordering per socket: a connection is on the dirty list once, so it has at
// most one send per batch; output produced for it while its batch
// completes (a close's effects) waits for the next batch, behind whatever
// its completion handed to gnet; and spill, which writes around the flush,
// does nothing while the connection has bytes in flight.
//
// A flush of a single connection (a lone caller answered at once by the
// adaptive policy) uses write(2): one send per enter costs a little more
// than a write (issue 15: 1.08×), and ringMinBatch keeps that latency as
// it was.

// IOUringMode selects the loops' send path (Options.IOUring).
type IOUringMode uint8

// Send paths.
const (
	// IOUringAuto uses io_uring when the system has a usable one
	// (uring.Probe: Linux 5.6 or later, not disabled by sysctl, not blocked
	// by seccomp) and write(2) otherwise; Start logs which and why.
	IOUringAuto IOUringMode = iota
	// IOUringOn requires io_uring: Start fails, saying why, without it.
	IOUringOn
	// IOUringOff writes with write(2) through gnet.
	IOUringOff
)

// String returns "auto", "on" or "off".
func (m IOUringMode) String() string {
	switch m {
	case IOUringOn:
		return "on"
	case IOUringOff:
		return "off"
	}
	return "auto"
}

// ParseIOUringMode maps "auto" (or ""), "on" and "off" to a mode.
func ParseIOUringMode(s string) (IOUringMode, error) {
	switch s {
	case "", "auto":
		return IOUringAuto, nil
	case "on":
		return IOUringOn, nil
	case "off":
		return IOUringOff, nil
	}
	return 0, fmt.Errorf("io_uring must be auto, on or off, not %q", s)
}

// Send paths as Stats.SendPath reports them.
const (
	SendPathIOUring = "io_uring"
	SendPathWrite   = "write"
)

// ringMinBatch is the fewest connections a flush hands to the ring; fewer
// are written with write(2).
const ringMinBatch = 2

// testIOUring, when set (by the package's tests: TestMain reads
// EDGEWAMP_TEST_IO_URING), replaces IOUringAuto for every engine; tests
// that set IOUringOn or IOUringOff keep their choice.
var testIOUring *IOUringMode

// errRingLost is the close reason detail of a connection whose send the
// ring lost (its io_uring_enter failed): whether its bytes went out is
// unknown, so the stream cannot go on.
var errRingLost = errors.New("loop: io_uring send lost (the ring failed)")

// startRings chooses the send path and sets up one ring per loop. It runs
// in Start, before the loops.
func (e *Engine) startRings() error {
	mode := e.opts.IOUring
	if testIOUring != nil && mode == IOUringAuto {
		mode = *testIOUring
	}
	e.sendPath = SendPathWrite
	if mode == IOUringOff {
		e.log.Info("send path: write(2)", "io_uring", mode.String())
		return nil
	}
	err := uring.Probe()
	perEnter := uring.DefaultEntries
	for i := 0; err == nil && i < e.router.Shards(); i++ {
		var r *uring.Ring
		if r, err = newRing(); err == nil {
			e.rings = append(e.rings, r)
			perEnter = min(perEnter, r.Cap())
		}
	}
	if err != nil {
		e.closeRings()
		if mode == IOUringOn {
			return fmt.Errorf("loop: io_uring is required (tuning.io_uring: on) but unavailable: %w; "+
				"tuning.io_uring: auto falls back to write(2)", err)
		}
		e.log.Info("send path: write(2): io_uring unavailable", "io_uring", mode.String(), "reason", err.Error())
		return nil
	}
	e.sendPath = SendPathIOUring
	e.log.Info("send path: io_uring", "io_uring", mode.String(), "rings", len(e.rings), "sends_per_enter", perEnter)
	return nil
}

// newRing sets up a loop's ring: uring.DefaultEntries sends per enter, or
// fewer where the kernel refuses the memory. Kernels before 5.12 count
// ring memory against RLIMIT_MEMLOCK, often 64 KiB: a ring of 1,024 sends
// takes about 100 KiB, one of 64 sends about 8 KiB.
func newRing() (*uring.Ring, error) {
	var r *uring.Ring
	var err error
	for _, n := range []int{uring.DefaultEntries, 256, 64} {
		if r, err = uring.New(n); !errors.Is(err, unix.ENOMEM) {
			break
		}
	}
	return r, err
}

// closeRings releases the rings once the loops have stopped.
func (e *Engine) closeRings() {
	for _, r := range e.rings {
		r.Close()
	}
	e.rings = nil
}

// SendPath returns how the loops write: SendPathIOUring or SendPathWrite.
// Valid after Start.
func (e *Engine) SendPath() string { return e.sendPath }

// ringSend is one connection of a batch (flushRing). Owned by the loop.
type ringSend struct {
	cn     *conn
	out    []byte // the output taken from cn; the ring's until Submit returns
	queued bool   // sent through the ring (else written through gnet)
	res    int32  // the send's completion: bytes sent, or -errno
}

// flushRing writes the dirty connections from ls.dirty[i] on, up to the
// ring's capacity, as one batch (the three phases above), and returns the
// index after the last connection it took. It runs inside flush's walk.
func (ls *loopState) flushRing(i int) int {
	r := ls.ring
	batch := ls.batch[:0]
	for ; i < len(ls.dirty) && r.Queued() < r.Cap(); i++ {
		cn := ls.dirty[i]
		ls.dirty[i] = nil
		cn.dirty = false
		out, ok := cn.take()
		if !ok {
			continue
		}
		s := ringSend{cn: cn, out: out}
		// In flight until its completion also when it is not queued
		// (gnet holds output for it): taken out of cn, it is still its
		// backlog while the batch completes. Before, such a connection
		// counted none of it there, and a leaving session's testament
		// found it under hard_limit though it was past.
		cn.inflight = len(out)
		if len(out) > 0 && cn.c.OutboundBuffered() == 0 && r.Send(cn.c.Fd(), out, uint64(len(batch))) {
			s.queued = true
		}
		batch = append(batch, s)
	}
	if n := r.Queued(); n > 0 {
		enters := r.Enters()
		done, err := r.Submit()
		for _, c := range done {
			s := &batch[c.Tag]
			s.res = c.Res
			if c.Res > 0 {
				// What the socket took is no longer the connection's
				// backlog: output produced for it while the batch
				// completes (a leaving session's testament or meta event)
				// is judged by the rest only.
				s.cn.inflight -= int(c.Res)
			}
		}
		e := ls.e
		e.ringSends.Add(uint64(n))
		e.ringEnters.Add(r.Enters() - enters)
		if err != nil {
			// The ring failed (never seen on a working kernel): this loop
			// goes back to write(2).
			e.log.Error("io_uring ring failed; this loop writes with write(2) from now on", "err", err.Error())
			e.ringFailures.Add(1)
			ls.ring = nil
		}
	}
	for j := range batch {
		s := &batch[j]
		s.cn.complete(s)
		*s = ringSend{}
	}
	ls.batch = batch[:0]
	return i
}

// complete finishes a connection's part of a batch (phase 3): the rest of
// a short send to gnet, an error to the close reason, the buffer back to
// the pool, the close of a dying connection.
func (cn *conn) complete(s *ringSend) {
	cn.inflight = 0
	out := s.out
	switch {
	case cn.phase == phGone:
		// Not reachable (nothing closes a connection of the batch but its
		// own write); never touch a gone connection's descriptor.
	case !s.queued:
		if len(out) > 0 {
			cn.write(out) // gnet holds output for it: appended behind
		}
	case s.res >= 0:
		if rest := out[s.res:]; len(rest) > 0 {
			cn.ls.e.ringPartial.Add(1)
			cn.write(rest)
		}
	case s.res == -int32(unix.EAGAIN):
		cn.ls.e.ringPartial.Add(1)
		cn.write(out)
	case s.res == -int32(unix.ECANCELED):
		cn.write(out) // nothing of it was sent
	case s.res == -int32(unix.EIO) && cn.ls.ring == nil:
		// Lost by a failed ring: the kernel may still read the buffer, so
		// it does not go back to the pool.
		out = nil
		cn.sendFailed(errRingLost)
	default:
		cn.sendFailed(os.NewSyscallError("send", unix.Errno(-s.res)))
	}
	cn.sent(out)
}

// sendFailed records a send error as the close reason and marks the
// connection dying; sent then asks gnet to close it (asynchronously, as
// every close we request).
func (cn *conn) sendFailed(err error) {
	cn.setReason(CloseReset, err)
	cn.phase = phDead
}
