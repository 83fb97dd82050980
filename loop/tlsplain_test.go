package loop

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// A partial frame left at the end of a read callback does not keep the
// pooled buffer it was read into: it is moved to the connection's spare
// buffer, of about its size, and the next callback reads on in a pooled
// buffer again; the spare is reused, so that a frame streamed across
// callbacks allocates nothing.
func TestTLSPlainRelease(t *testing.T) {
	ls := &loopState{poolMax: poolMaxBytes, keepMax: outBufKeep(defaultHighWater, poolMaxBytes)}
	ls.putBuf(make([]byte, 0, 256<<10))
	var p tlsPlain
	p.commit(copy(p.space(ls), "0123456789"))
	if cap(p.b) != 256<<10 || len(ls.pool) != 0 {
		t.Fatalf("borrowed %d bytes, %d left in the pool", cap(p.b), len(ls.pool))
	}
	p.Discard(9)
	p.release(ls)
	if cap(p.b) != 1 || string(p.b[p.r:]) != "9" || p.held() != 1 || ls.pooled != 256<<10 {
		t.Fatalf("after release: %q in %d bytes, held %d, %d pooled", p.b[p.r:], cap(p.b), p.held(), ls.pooled)
	}
	p.commit(copy(p.space(ls), "abc"))
	if cap(p.b) != 256<<10 || string(p.b[p.r:]) != "9abc" || ls.pooled != 0 {
		t.Fatalf("next callback: %q in %d bytes, %d pooled", p.b[p.r:], cap(p.b), ls.pooled)
	}
	p.Discard(0)
	p.release(ls)
	if p.b != nil || p.spare != nil || p.held() != 0 || ls.pooled != 256<<10 {
		t.Fatalf("empty: %d bytes held, %d pooled", p.held(), ls.pooled)
	}

	// Streaming: each callback reads a record and leaves 3,000 bytes of a
	// frame: no allocation once the spare is made.
	rec := make([]byte, maxPlaintext)
	callback := func() {
		for n := 0; n < len(rec); {
			k := copy(p.space(ls), rec[n:])
			p.commit(k)
			n += k
		}
		p.Discard(p.InboundBuffered() - 3000)
		p.release(ls)
	}
	callback()
	if allocs := testing.AllocsPerRun(100, callback); allocs != 0 || cap(p.b) != 4096 || ls.pooled != 256<<10 {
		t.Fatalf("streaming: %v allocations a callback; %d bytes held, %d pooled", allocs, cap(p.b), ls.pooled)
	}

	// A pooled buffer at most twice its content and tlsPlainSlack is kept.
	p.drop(ls)
	p.b = append(make([]byte, 0, 2*3000+tlsPlainSlack), make([]byte, 3000)...)
	kept := &p.b[0]
	p.release(ls)
	if &p.b[0] != kept {
		t.Fatal("a buffer twice its content and 16 KiB was replaced")
	}
	p.drop(ls)
}

// BenchmarkTLSPlainCallback is one read callback's use of the plaintext
// buffer (tlsRead, the parsers, tlsTraffic's release): two 16 KiB records
// read into it, everything parsed but rest bytes of a partial frame, which
// wait for the next callback. The pool holds buffers output rounds grew.
func BenchmarkTLSPlainCallback(b *testing.B) {
	rec := make([]byte, maxPlaintext)
	for _, rest := range []int{0, 100, 4 << 10, 30 << 10} {
		b.Run(fmt.Sprintf("rest=%d", rest), func(b *testing.B) {
			ls := &loopState{poolMax: poolMaxBytes, keepMax: outBufKeep(defaultHighWater, poolMaxBytes)}
			for range 8 {
				ls.putBuf(make([]byte, 0, 256<<10))
			}
			var p tlsPlain
			b.SetBytes(2 * maxPlaintext)
			b.ReportAllocs()
			for b.Loop() {
				for range 2 {
					for n := 0; n < len(rec); {
						k := copy(p.space(ls), rec[n:])
						p.commit(k)
						n += k
					}
				}
				p.Discard(p.InboundBuffered() - rest)
				p.release(ls)
			}
		})
	}
}

// BenchmarkTLSTrafficStream: a TLS RawSocket publisher streams PUBLISHes
// of size bytes (no subscriber) in writes of 48 KiB, so that most read
// callbacks end in the middle of a frame; one op is one write and its read
// callback: decrypted, parsed, routed, the partial frame left for the
// next (tlsPlain.release). (fakeConn wants a *testing.T for its checks:
// a zero one, which fails only on a closed connection.)
func BenchmarkTLSTrafficStream(b *testing.B) {
	for _, size := range []int{100, 4 << 10, 30 << 10} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			fzMu.Lock()
			defer fzMu.Unlock()
			f := newFakeTLSJoined(b, new(testing.T))
			defer f.c.gnetClose(io.EOF)
			h, c, el, w, tc := f.h, f.c, f.el, f.w, f.tc
			pad := bytes.Repeat([]byte("x"), size-40)
			frame := rsFrame(0, fmt.Appendf(nil, `[16,1,{},"com.stream",["%s"]]`, pad))
			var stream []byte
			for len(stream) < 4<<20 {
				stream = append(stream, frame...)
			}
			stream = stream[:len(stream)/len(frame)*len(frame)]
			const chunk = 48 << 10
			off := 0
			step := func() {
				end := off + chunk
				if end <= len(stream) {
					tc.Write(stream[off:end])
				} else {
					tc.Write(stream[off:])
					end -= len(stream)
					tc.Write(stream[:end])
				}
				off = end
				w.pump(b, h, c, el, false)
			}
			for range 100 {
				step()
			}
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				step()
			}
		})
	}
}
