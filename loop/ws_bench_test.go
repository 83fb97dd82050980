package loop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// replayIn is an inbound that serves the same frame forever: Discard only
// rewinds. It isolates the parser's cost from any buffer copying.
type replayIn struct{ frame []byte }

func (r *replayIn) Peek(n int) ([]byte, error) { return r.frame[:n], nil }
func (r *replayIn) Discard(n int) (int, error) { return n, nil }
func (r *replayIn) InboundBuffered() int       { return len(r.frame) }

// BenchmarkWSReader parses one masked client frame per iteration: header,
// limit check, in-place unmasking, and for text the UTF-8 check. Binary
// frames are unmasked in place again every iteration, which is the same
// work. Text frames are restored from a pristine copy first, so they cost
// one extra copy of the frame.
func BenchmarkWSReader(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, op := range []ws.OpCode{ws.OpBinary, ws.OpText} {
			name := fmt.Sprintf("op=%s/msgSz=%d", map[ws.OpCode]string{ws.OpBinary: "binary", ws.OpText: "text"}[op], size)
			b.Run(name, func(b *testing.B) {
				pristine := cframe(true, op, strings.Repeat("a", size))
				in := &replayIn{frame: append([]byte(nil), pristine...)}
				r := &wsReader{maxMessage: 1 << 20}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if op == ws.OpText {
						copy(in.frame, pristine)
					}
					ev, n, err := r.next(in)
					if err != nil || n != len(pristine) || ev.kind != wsMessage {
						b.Fatalf("n %d err %v", n, err)
					}
					in.Discard(n)
				}
			})
		}
	}
}

// BenchmarkRawReader parses one RawSocket frame per iteration.
func BenchmarkRawReader(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("msgSz=%d", size), func(b *testing.B) {
			in := &replayIn{frame: appendRawFrame(nil, rawMessage, make([]byte, size))}
			r := &rawReader{maxLen: 1 << 20}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, n, err := r.next(in); err != nil || n != size+4 {
					b.Fatal(n, err)
				}
			}
		})
	}
}
