package loop

import (
	"io"
	"math/bits"
)

// tlsPlain is a TLS connection's decrypted input: the inbound (inbound.go)
// its parsers read, with gnet's semantics. Within a read callback its
// buffer is borrowed from the loop's pool, which holds whatever output
// rounds grew (up to keepMax, 512 KiB by default). At the end of the
// callback (release) the buffer goes back to the pool when it is empty, so
// an idle connection holds none; a partial frame waiting for its rest
// stays in it only when the buffer is at most twice the frame's bytes and
// tlsPlainSlack, and is otherwise moved to the connection's own buffer
// (spare), of about its size and reused from one callback to the next, so
// that streaming frames across callbacks allocates (almost) nothing. The
// budget counts the buffer's capacity (held). Before, one byte of a frame
// kept a pooled buffer of up to 512 KiB between callbacks, counted as one
// byte.
// Owned by the connection's loop. Slices returned by Peek are valid until
// the next Discard, space or release.
type tlsPlain struct {
	b       []byte // b[r:] is buffered; nil when released
	r       int
	spare   []byte // the connection's own buffer for a partial frame between callbacks; nil when it holds none
	inSpare bool   // b is spare's array, not the pool's
}

// tlsPlainMinFree is the least free space tlsRead offers crypto/tls: a
// record's plaintext larger than that is read in several calls.
const tlsPlainMinFree = 2 << 10

// tlsPlainSlack is how much more than twice the bytes it holds a
// connection's plaintext buffer may be between read callbacks: one
// record's plaintext.
const tlsPlainSlack = maxPlaintext

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
// the front, or to a larger buffer: the pool's next one when it is large
// enough (so what release left in the spare goes back to a pooled buffer
// in the next callback), else a new one twice the size.
func (p *tlsPlain) space(ls *loopState) []byte {
	if p.b == nil {
		p.b = ls.getBuf()
	}
	if cap(p.b)-len(p.b) < tlsPlainMinFree {
		buffered := len(p.b) - p.r
		need := buffered + tlsPlainMinFree
		if p.r > 0 && cap(p.b) >= need {
			copy(p.b, p.b[p.r:])
		} else {
			var nb []byte
			if k := len(ls.pool); k > 0 && cap(ls.pool[k-1]) >= need {
				nb = ls.getBuf()[:buffered]
			} else {
				nb = make([]byte, buffered, max(2*cap(p.b), need))
			}
			copy(nb, p.b[p.r:])
			if !p.inSpare {
				ls.putBuf(p.b)
			}
			p.b, p.inSpare = nb, false
		}
		p.b, p.r = p.b[:buffered], 0
	}
	return p.b[len(p.b):cap(p.b)]
}

// commit adds n bytes written into the space returned by space.
func (p *tlsPlain) commit(n int) { p.b = p.b[:len(p.b)+n] }

// plainFits reports whether a pooled buffer of c bytes may keep n
// buffered bytes between read callbacks.
func plainFits(c, n int) bool { return c >= n && c <= 2*n+tlsPlainSlack }

// release runs at the end of a read callback: it returns the buffer to
// the loop's pool when it is empty, and otherwise moves what a pooled
// buffer holds to the spare, unless the spare is too small and the pooled
// buffer small enough (plainFits). The spare is made at most twice the
// bytes it is made for, and kept, while the input is not empty at the end
// of a callback, for the next partial frames that fit in it: it is at most
// twice the largest partial frame since the input was last empty.
func (p *tlsPlain) release(ls *loopState) {
	if p.b == nil {
		return
	}
	buffered := len(p.b) - p.r
	switch {
	case buffered == 0:
		if !p.inSpare {
			ls.putBuf(p.b)
		}
		p.b, p.r, p.spare, p.inSpare = nil, 0, nil, false
	case p.inSpare:
	case cap(p.spare) < buffered && plainFits(cap(p.b), buffered):
		p.spare = nil // a pooled buffer of about its size: kept instead
	default:
		nb := p.spare
		if cap(nb) < buffered {
			nb = make([]byte, 0, 1<<bits.Len(uint(buffered-1))) // at most twice
		}
		nb = append(nb[:0], p.b[p.r:]...)
		ls.putBuf(p.b)
		p.b, p.r, p.spare, p.inSpare = nb, 0, nb, true
	}
}

// held returns the memory the buffers take between read callbacks (after
// release): the buffer's capacity.
func (p *tlsPlain) held() int { return cap(p.b) }

// drop returns the buffer whatever it holds (the connection is gone).
func (p *tlsPlain) drop(ls *loopState) {
	if p.b != nil && !p.inSpare {
		ls.putBuf(p.b)
	}
	p.b, p.r, p.spare, p.inSpare = nil, 0, nil, false
}
