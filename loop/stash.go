package loop

import (
	"io"
	"math/bits"
)

// A plaintext connection's input left over at the end of a read callback
// (a partial frame, a partial HTTP header) is moved out of gnet's buffer
// to the connection's own, the stash, and the parsers read the stash
// ahead of gnet's buffer until it is empty again.
//
// Left to gnet, the leftover went into the connection's ring buffer, an
// array that only grows and that gnet takes from, and gives back to, a
// process-wide pool whatever its size: a connection kept the array as
// long as it held one byte, and the budget (conn.account) counted the
// byte. A client that sent most of a 60 KB frame, then its rest with the
// first byte of the next frame, kept a 64 KiB array for one counted
// byte, for as long as it liked (its keepalive pong completes the frame
// and leaves the next byte): 10,000 such sessions took the router from
// 21 MB to 650 MB of RSS under a 64 MiB max_inbound_total, nothing
// closed (46 MB for 10,000 idle sessions). The stash is counted by its
// capacity, as a TLS connection's plaintext buffer is (tlsPlain), and
// made about its bytes' size by the next scan (trimStash).
//
// The cost is one copy of the leftover, the copy gnet made into its ring
// buffer, and, for the frame that spans two callbacks, the copy gnet's
// Peek made of it to join its two parts. A connection whose input ends
// with whole frames (most, and every idle one) holds no stash and reads
// gnet's buffer directly (conn.in is the gnet.Conn). A TLS connection's
// partial record (up to 16 KiB and 256 bytes and its header) is stashed
// the same way, read by its record layer (conn.wire); its decrypted input
// has a buffer of its own (tlsPlain). The HTTP lane (the gateway's
// requests, lane.go) keeps gnet's buffer, where it leaves pipelined
// requests on purpose.

// stashMin is the smallest stash allocated; stashSlack how much larger
// than four times its bytes a stash may stay past a scan (trimStash).
const (
	stashMin   = 512
	stashSlack = 4 << 10
)

// stash is a plaintext connection's input ahead of gnet's buffer: an
// inbound (inbound.go) over both. Owned by the connection's loop.
type stash struct {
	cn *conn  // static
	b  []byte // b[r:] is buffered ahead of gnet's; nil while the connection holds no stash
	r  int
}

func (s *stash) have() int { return len(s.b) - s.r }

// InboundBuffered implements inbound.
func (s *stash) InboundBuffered() int { return s.have() + s.cn.c.InboundBuffered() }

// Peek implements inbound. A Peek past the stash moves what it needs from
// gnet's buffer to the stash's end (the bytes a frame that spans two read
// callbacks needs, which gnet's Peek copied to join them); slices returned
// before stay valid (the stash grows into a new array, it never moves its
// bytes within one).
func (s *stash) Peek(n int) ([]byte, error) {
	have := s.have()
	if n <= 0 {
		n = have + s.cn.c.InboundBuffered() // gnet's: everything buffered
	}
	if n > have {
		if err := s.pull(n - have); err != nil {
			return nil, err
		}
	}
	return s.b[s.r : s.r+n : s.r+n], nil
}

// pull moves k bytes from the front of gnet's buffer to the stash's end.
func (s *stash) pull(k int) error {
	c := s.cn.c
	if c.InboundBuffered() < k {
		return io.ErrShortBuffer
	}
	p, err := c.Peek(k)
	if err != nil {
		return err
	}
	if cap(s.b)-len(s.b) < k {
		have := s.have()
		nb := make([]byte, have, stashCap(have+k))
		copy(nb, s.b[s.r:])
		s.b, s.r = nb, 0
	}
	s.b = append(s.b, p...)
	c.Discard(k) // k > 0: Discard(0) would drop everything
	return nil
}

// Discard implements inbound, with gnet's semantics: n <= 0, or n at
// least what is buffered, discards everything. The stash once empty, the
// connection reads gnet's buffer directly again.
func (s *stash) Discard(n int) (int, error) {
	have := s.have()
	if n > 0 && n < have {
		s.r += n
		return n, nil
	}
	s.b, s.r = s.b[:0], 0
	cn := s.cn
	if cn.in == inbound(s) {
		cn.in = cn.c
	}
	g := cn.c.InboundBuffered()
	if g == 0 || n == have {
		return have, nil
	}
	rest := g // n <= 0: everything
	if n > 0 {
		rest = min(n-have, g)
	}
	k, _ := cn.c.Discard(rest) // rest > 0
	return have + k, nil
}

// held returns the memory the stash takes (its capacity), for the budget.
func (s *stash) held() int { return cap(s.b) }

// stashCap returns the capacity of a stash for n bytes: a power of two,
// at most twice n, at least stashMin.
func stashCap(n int) int {
	if n <= stashMin {
		return stashMin
	}
	return 1 << bits.Len(uint(n-1))
}

// stashRest runs at the end of a connection's read callback (OnTraffic),
// once its input is parsed: what gnet still buffers moves to the stash,
// which the parsers then read (conn.in; on a TLS connection the records
// are read from it, conn.wire). An empty stash lets go of its array; one
// much larger than its bytes is made smaller by the scan (trimStash).
func (cn *conn) stashRest() {
	if cn.phase == phLane || cn.phase >= phDead {
		return
	}
	s := cn.st
	k := cn.c.InboundBuffered()
	if k == 0 && (s == nil || s.b == nil) {
		return // the usual case: whole frames only, and no stash
	}
	if s == nil {
		s = &stash{cn: cn} // kept (48 bytes), its array only while it holds bytes
		cn.st = s
	}
	if k > 0 {
		if err := s.pull(k); err != nil {
			return // not reached: gnet buffers k bytes
		}
	}
	have := s.have()
	switch {
	case have == 0:
		s.b, s.r = nil, 0
		if cn.tls == nil {
			cn.in = cn.c
		}
		return
	case s.r > 0:
		// No slice of the stash is in use between callbacks.
		copy(s.b, s.b[s.r:])
		s.b, s.r = s.b[:have], 0
	}
	if cn.tls == nil {
		cn.in = s
	}
}

// trimStash makes a stash much larger than its bytes smaller; the scan
// runs it once a second, then brings the budget's count up to date. Not
// done at each read callback: a client streaming frames of tens of KiB
// ends its reads anywhere in a frame, and a stash made smaller after each
// short leftover was made larger again at the next long one, a new array
// of up to twice the frame every few reads (30 KiB frames in 48 KiB
// reads: 10 KiB allocated a read, the callback about twice as slow). A
// connection that left a byte behind a long partial frame keeps its array
// until the next scan, counted by its capacity meanwhile.
func (cn *conn) trimStash() bool {
	s := cn.st
	if s == nil || s.b == nil || cn.phase >= phDead {
		return false
	}
	have := s.have()
	if cap(s.b) <= max(4*have, stashSlack) {
		return false
	}
	if have == 0 { // a TLS connection's records read outside a callback
		s.b, s.r = nil, 0
		if cn.in == inbound(s) {
			cn.in = cn.c
		}
		return true
	}
	nb := make([]byte, have, stashCap(have))
	copy(nb, s.b[s.r:])
	s.b, s.r = nb, 0
	return true
}

// wire returns the connection's input as it came (a TLS connection's
// records): the stash ahead of gnet's buffer, or gnet's buffer.
func (cn *conn) wire() inbound {
	if s := cn.st; s != nil && s.b != nil {
		return s
	}
	return cn.c
}
