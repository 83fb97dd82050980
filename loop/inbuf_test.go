package loop

import (
	"errors"
	"io"
)

// errInBufFull is returned by inBuf.readFrom and inBuf.write when the buffer
// holds its configured maximum and cannot take more bytes. For the reader of
// a TLS connection it means the peer sent more than the framing limits allow
// without completing a frame, which the parsers normally report first.
var errInBufFull = errors.New("loop: inbound buffer full")

// inBufMinGrow is the smallest backing array inBuf allocates: one read from a
// crypto/tls.Conn returns at most one TLS record (16 KiB of plaintext), but
// most WAMP messages are far smaller, so start small and grow on demand.
const inBufMinGrow = 4 << 10

// inBuf is a bounded, compacting byte buffer that implements inbound for
// tests: the parsers are exercised over it byte by byte, and the fake gnet
// connections of the state-machine fuzzer read from it. (TLS connections
// read their decrypted input from tlsPlain, tls.go.)
//
// The fill side is readFrom (one Read from an io.Reader) or write (copy a
// slice in). The read side is the inbound interface. The backing array is
// allocated lazily, grows by doubling up to max and never past it; release
// drops it while nothing is buffered, so an idle connection holds no buffer.
//
// Slices returned by Peek alias the backing array: they stay valid until the
// next Discard, write, readFrom or release, whichever comes first (a fill may
// compact the buffer and move the bytes).
//
// An inBuf is not safe for concurrent use; the zero value with max set is
// ready to use.
type inBuf struct {
	buf []byte // backing array; len(buf) == cap(buf); nil until the first fill
	r   int    // index of the first buffered byte
	w   int    // index one past the last buffered byte
	max int    // the most bytes the buffer may hold; <= 0 means inBufMinGrow
}

// newInBuf returns an empty inBuf that will hold at most max bytes. It does
// not allocate the backing array until the first fill.
func newInBuf(max int) *inBuf { return &inBuf{max: max} }

// limit returns the configured maximum, applying the default.
func (b *inBuf) limit() int {
	if b.max <= 0 {
		return inBufMinGrow
	}
	return b.max
}

// InboundBuffered returns the number of bytes buffered and not yet discarded.
func (b *inBuf) InboundBuffered() int { return b.w - b.r }

// Peek returns the first n buffered bytes without consuming them, or
// io.ErrShortBuffer when fewer than n are buffered. Like gnet, n <= 0 means
// "everything buffered". The slice aliases the buffer (see inBuf); Peek never
// allocates or copies.
func (b *inBuf) Peek(n int) ([]byte, error) {
	if n <= 0 {
		return b.buf[b.r:b.w], nil
	}
	if n > b.w-b.r {
		return nil, io.ErrShortBuffer
	}
	return b.buf[b.r : b.r+n], nil
}

// Discard consumes the first n buffered bytes and returns how many were
// consumed. Like gnet, n <= 0 or n >= InboundBuffered() consumes everything.
func (b *inBuf) Discard(n int) (int, error) {
	if buffered := b.w - b.r; n <= 0 || n >= buffered {
		b.r, b.w = 0, 0
		return buffered, nil
	}
	b.r += n
	return n, nil
}

// free makes room for at least want more bytes, if the limit allows, by
// compacting and then growing the backing array. It returns the number of
// bytes that can now be appended at b.w (possibly fewer than want, possibly
// zero when the buffer is full).
func (b *inBuf) free(want int) int {
	buffered := b.w - b.r
	room := b.limit() - buffered
	if want > room {
		want = room
	}
	if want <= 0 {
		return 0
	}
	if len(b.buf)-b.w >= want {
		return len(b.buf) - b.w
	}
	if len(b.buf)-buffered >= want {
		// Compact: move the unread bytes to the front. Invalidates Peek slices.
		copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, buffered
		return len(b.buf) - b.w
	}
	size := max(2*len(b.buf), buffered+want, inBufMinGrow)
	size = min(size, b.limit())
	nb := make([]byte, size)
	copy(nb, b.buf[b.r:b.w])
	b.buf, b.r, b.w = nb, 0, buffered
	return len(b.buf) - b.w
}

// write appends as much of p as fits and returns the number of bytes taken.
// It returns errInBufFull when not all of p fit. It allocates only when the
// backing array has to grow.
func (b *inBuf) write(p []byte) (int, error) {
	room := b.free(len(p))
	n := copy(b.buf[b.w:b.w+room], p)
	b.w += n
	if n < len(p) {
		return n, errInBufFull
	}
	return n, nil
}

// readFrom performs one Read from r into the buffer, reading at most chunk
// bytes when chunk > 0 (tests use it to feed odd chunk sizes; a TLS reader
// passes 0). It returns errInBufFull, without calling r, when the buffer is
// full; otherwise it returns what r.Read returned. It blocks as long as
// r.Read blocks and allocates only when the backing array has to grow.
func (b *inBuf) readFrom(r io.Reader, chunk int) (int, error) {
	want := inBufMinGrow
	if chunk > 0 {
		want = chunk
	}
	room := b.free(want)
	if room == 0 {
		return 0, errInBufFull
	}
	if chunk > 0 && room > chunk {
		room = chunk
	}
	n, err := r.Read(b.buf[b.w : b.w+room])
	if n > 0 {
		b.w += n
	}
	return n, err
}

// release drops the backing array when no bytes are buffered, so that an
// idle connection holds no read buffer. It reports whether it did.
func (b *inBuf) release() bool {
	if b.w != b.r {
		return false
	}
	b.buf, b.r, b.w = nil, 0, 0
	return true
}
