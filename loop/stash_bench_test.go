package loop

import (
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/proto"
)

// gnetSim is a fakeConn whose input behaves as gnet v2.9's does: the
// bytes of the current read (buffer, the loop's read buffer) behind the
// ones an earlier read callback left (ring, gnet's per-connection buffer);
// Peek over both joins them in a copy; what a callback leaves of its read
// is appended to ring after it returns (gnet's eventloop.read). The ring's
// array is reused once emptied (gnet's resetBuffer gives it back to its
// pool, and takes one from it again).
type gnetSim struct {
	*fakeConn
	ring   []byte
	rr     int
	buffer []byte
	cache  []byte
}

func (c *gnetSim) InboundBuffered() int { return len(c.ring) - c.rr + len(c.buffer) }

func (c *gnetSim) Peek(n int) ([]byte, error) {
	rl := len(c.ring) - c.rr
	total := rl + len(c.buffer)
	if n > total {
		return nil, io.ErrShortBuffer
	} else if n <= 0 {
		n = total
	}
	if rl == 0 {
		return c.buffer[:n], nil
	}
	if n <= rl {
		return c.ring[c.rr : c.rr+n], nil
	}
	buf := append(c.cache[:0], c.ring[c.rr:]...)
	buf = append(buf, c.buffer[:n-rl]...)
	c.cache = buf
	return buf, nil
}

func (c *gnetSim) Discard(n int) (int, error) {
	rl := len(c.ring) - c.rr
	total := rl + len(c.buffer)
	if n <= 0 || n >= total {
		c.ring, c.rr, c.buffer = c.ring[:0], 0, c.buffer[:0]
		return total, nil
	}
	if n < rl {
		c.rr += n
		return n, nil
	}
	c.ring, c.rr = c.ring[:0], 0
	c.buffer = c.buffer[n-rl:]
	return n, nil
}

// read is one read of b and its callback, then gnet's keeping of the
// callback's leftover.
func (c *gnetSim) read(b testing.TB, h *handler, el *fakeLoop, p []byte) {
	c.buffer = p
	if h.OnTraffic(c) != gnet.None {
		b.Fatal("closed")
	}
	if len(c.buffer) > 0 {
		if c.rr > 0 {
			c.ring = append(c.ring[:0], c.ring[c.rr:]...)
			c.rr = 0
		}
		c.ring = append(c.ring, c.buffer...)
		c.buffer = nil
	}
	el.run()
	c.out.Reset()
}

// newSimPublisher opens a RawSocket JSON publisher on connFixture's loop
// over gnetSim input and joins it. The caller holds fzMu and closes it.
func newSimPublisher(tb testing.TB) (*gnetSim, *handler, *fakeLoop) {
	e, el := connFixture()
	h := &handler{e: e}
	fc := &fakeConn{t: new(testing.T), h: h, el: el, in: newInBuf(1 << 20), local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}
	c := &gnetSim{fakeConn: fc}
	fakeAccept(e, fc) // sets the context on fc, which OnOpen reads through c
	h.OnOpen(c)
	hello := []byte(`[1,"realm1",{"roles":{"publisher":{}}}]`)
	c.read(tb, h, el, append(rsHandshake(proto.JSON, 15), rsFrame(0, hello)...))
	return c, h, el
}

func (c *gnetSim) close() { c.closed = true; c.h.OnClose(c, io.EOF) }

// simStream returns a stream of PUBLISHes of frame bytes each, and a step
// that feeds its next chunk bytes (or one frame, chunk 0) as one read.
func simStream(tb testing.TB, c *gnetSim, h *handler, el *fakeLoop, frameLen, chunk int) func() {
	pad := make([]byte, frameLen-40)
	for i := range pad {
		pad[i] = 'x'
	}
	frame := rsFrame(0, fmt.Appendf(nil, `[16,1,{},"com.stream",["%s"]]`, pad))
	var stream []byte
	if chunk == 0 {
		chunk = len(frame)
		stream = frame
	} else {
		for len(stream) < 4<<20 {
			stream = append(stream, frame...)
		}
		stream = stream[:len(stream)/len(frame)*len(frame)]
	}
	buf := make([]byte, chunk)
	off := 0
	return func() {
		n := copy(buf, stream[off:])
		if n < chunk {
			n += copy(buf[n:], stream)
		}
		off = (off + chunk) % len(stream)
		c.read(tb, h, el, buf[:n])
	}
}

// BenchmarkReadCallback is a RawSocket publisher's read callback (the
// engine's OnTraffic: framing, the PUBLISH routed to no subscriber,
// budget accounting) over gnet-like input: reads of whole frames
// (split=0), or of a fixed size that ends most reads in the middle of a
// frame (split=48KiB: a client streaming; split=1000: a client whose
// writes are cut small), for frames of size bytes. One op is one read.
func BenchmarkReadCallback(b *testing.B) {
	for _, tc := range []struct{ frame, chunk int }{
		{100, 0}, {4 << 10, 0}, {100, 48 << 10}, {4 << 10, 48 << 10}, {30 << 10, 48 << 10}, {4 << 10, 1000},
	} {
		b.Run(fmt.Sprintf("frame=%d/split=%d", tc.frame, tc.chunk), func(b *testing.B) {
			fzMu.Lock()
			defer fzMu.Unlock()
			c, h, el := newSimPublisher(b)
			defer c.close()
			step := simStream(b, c, h, el, tc.frame, tc.chunk)
			for range 200 {
				step()
			}
			chunk := tc.chunk
			if chunk == 0 {
				chunk = tc.frame
			}
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				step()
			}
		})
	}
}
