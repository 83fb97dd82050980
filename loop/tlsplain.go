package loop

import "io"

// tlsPlain is a TLS connection's decrypted input: the inbound (inbound.go)
// its parsers read, with gnet's semantics. Its buffer is borrowed from the
// loop's pool while it holds bytes and returned when it is empty at the
// end of a read callback (release), so an idle connection holds none.
// Owned by the connection's loop. Slices returned by Peek are valid until
// the next Discard or space.
type tlsPlain struct {
	b []byte // b[r:] is buffered; nil when released
	r int
}

// tlsPlainMinFree is the least free space tlsRead offers crypto/tls: a
// record's plaintext larger than that is read in several calls.
const tlsPlainMinFree = 2 << 10

// InboundBuffered implements inbound.
func (p *tlsPlain) InboundBuffered() int { return len(p.b) - p.r }

// Peek implements inbound: n <= 0 returns everything buffered.
func (p *tlsPlain) Peek(n int) ([]byte, error) {
	if n <= 0 {
		return p.b[p.r:], nil
	}
	if n > len(p.b)-p.r {
		return nil, io.ErrShortBuffer
	}
	return p.b[p.r : p.r+n : p.r+n], nil
}

// Discard implements inbound: n <= 0, or n at least what is buffered,
// discards everything.
func (p *tlsPlain) Discard(n int) (int, error) {
	buffered := len(p.b) - p.r
	if n <= 0 || n >= buffered {
		p.b, p.r = p.b[:0], 0
		return buffered, nil
	}
	p.r += n
	return n, nil
}

// space returns free space at the end of the buffer, at least
// tlsPlainMinFree bytes: it borrows a buffer, moves the buffered bytes to
// the front, or grows it.
func (p *tlsPlain) space(ls *loopState) []byte {
	if p.b == nil {
		p.b = ls.getBuf()
	}
	if cap(p.b)-len(p.b) < tlsPlainMinFree {
		buffered := len(p.b) - p.r
		if p.r > 0 && cap(p.b)-buffered >= tlsPlainMinFree {
			copy(p.b, p.b[p.r:])
		} else {
			nb := make([]byte, buffered, max(2*cap(p.b), buffered+tlsPlainMinFree))
			copy(nb, p.b[p.r:])
			ls.putBuf(p.b)
			p.b = nb
		}
		p.b, p.r = p.b[:buffered], 0
	}
	return p.b[len(p.b):cap(p.b)]
}

// commit adds n bytes written into the space returned by space.
func (p *tlsPlain) commit(n int) { p.b = p.b[:len(p.b)+n] }

// release returns the buffer to the loop's pool when it is empty.
func (p *tlsPlain) release(ls *loopState) {
	if p.b != nil && p.r == len(p.b) {
		ls.putBuf(p.b)
		p.b, p.r = nil, 0
	}
}

// drop returns the buffer whatever it holds (the connection is gone).
func (p *tlsPlain) drop(ls *loopState) {
	if p.b != nil {
		ls.putBuf(p.b)
		p.b, p.r = nil, 0
	}
}
