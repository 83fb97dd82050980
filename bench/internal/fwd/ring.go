package fwd

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// The forwarder's io_uring send path: the same mechanism as the router's
// (loop/sendring.go), so that the ceiling the router is compared with
// moves with it. A flush of two connections or more goes out in batches:
// each connection's output is taken and, when gnet holds none for it,
// queued as an IORING_OP_SEND (MSG_DONTWAIT); one io_uring_enter submits
// the batch and waits for every completion; then, in order, what a socket
// did not take goes to gnet's buffered Write, and a send error closes the
// connection (die: after the flush). Nothing in the first phase closes a
// connection, so no queued descriptor can be closed and reused before the
// enter.

// ParseIOUring checks an io_uring mode: "auto" (or ""), "on" or "off".
func ParseIOUring(s string) (string, error) {
	switch s {
	case "", "auto":
		return "auto", nil
	case "on", "off":
		return s, nil
	}
	return "", fmt.Errorf("fwd: io_uring must be auto, on or off, not %q", s)
}

// startRings sets up one ring per loop as opts.IOUring says, and returns
// the send path ("io_uring" or "write") and, under auto, why io_uring is
// not used.
func (s *Server) startRings() (path string, why error, err error) {
	mode, err := ParseIOUring(s.opts.IOUring)
	if err != nil {
		return "", nil, err
	}
	if mode == "off" {
		return "write", nil, nil
	}
	perr := uring.Probe()
	for i := 0; perr == nil && i < s.opts.Loops; i++ {
		var r *uring.Ring
		if r, perr = uring.New(uring.DefaultEntries); perr == nil {
			s.rings = append(s.rings, r)
		}
	}
	if perr != nil {
		s.closeRings()
		if mode == "on" {
			return "", nil, fmt.Errorf("fwd: io_uring is required but unavailable: %w", perr)
		}
		return "write", perr, nil
	}
	return "io_uring", nil, nil
}

func (s *Server) closeRings() {
	for _, r := range s.rings {
		r.Close()
	}
	s.rings = nil
}

// ringSend is one connection of a batch.
type ringSend struct {
	cn     *conn
	out    []byte
	queued bool
	res    int32
}

// flushRing writes ls.dirty[i:], up to the ring's capacity, as one batch
// and returns the index after the last connection taken.
func (ls *loopState) flushRing(i int) int {
	r := ls.ring
	batch := ls.batch[:0]
	for ; i < len(ls.dirty) && r.Queued() < r.Cap(); i++ {
		cn := ls.dirty[i]
		ls.dirty[i] = nil
		cn.dirty = false
		out := cn.out
		cn.out = nil
		rs := ringSend{cn: cn, out: out}
		if len(out) > 0 && !cn.gone.Load() && cn.c.OutboundBuffered() == 0 && r.Send(cn.c.Fd(), out, uint64(len(batch))) {
			rs.queued = true
		}
		batch = append(batch, rs)
	}
	if n := r.Queued(); n > 0 {
		enters := r.Enters()
		done, err := r.Submit()
		for _, c := range done {
			batch[c.Tag].res = c.Res
		}
		st := &ls.s.stats
		st.ringSends.Add(uint64(n))
		st.ringEnters.Add(r.Enters() - enters)
		if err != nil {
			ls.ring = nil // back to write(2) for this loop
		}
	}
	for j := range batch {
		rs := &batch[j]
		cn, out := rs.cn, rs.out
		switch {
		case cn.gone.Load():
		case !rs.queued:
			if len(out) > 0 {
				cn.c.Write(out)
				ls.s.stats.writes.Add(1)
			}
		case rs.res >= 0:
			ls.s.stats.writes.Add(1)
			if rest := out[rs.res:]; len(rest) > 0 {
				ls.s.stats.ringPartial.Add(1)
				cn.c.Write(rest)
			}
		case rs.res == -int32(unix.EAGAIN), rs.res == -int32(unix.ECANCELED):
			ls.s.stats.ringPartial.Add(1)
			cn.c.Write(out)
		case rs.res == -int32(unix.EIO) && ls.ring == nil:
			out = nil // lost by a failed ring: the kernel may still read it
			cn.die("socket: io_uring send lost")
		default:
			cn.die("socket: send: " + unix.Errno(-rs.res).Error())
		}
		if cap(out) == outBufCap {
			ls.putBuf(out)
		}
		if cn.dead && !cn.dirty && !cn.gone.Load() {
			cn.c.Close()
		}
		*rs = ringSend{}
	}
	ls.batch = batch[:0]
	return i
}
