package loop

import (
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A plaintext connection's input left over at the end of a read callback
// (a partial frame) stayed in gnet's ring buffer, whose array is the
// largest the connection's (or any connection's: gnet pools them
// process-wide) partial input grew it to, and the budget counted the
// bytes buffered, not the array. A client that sent most of a 60 KB
// frame, then its rest and the first byte of the next frame, held a
// 64 KiB array for one counted byte, for as long as it kept a byte
// pending (a keepalive pong completes the frame and leaves the next
// byte). Measured with the binary: 10,000 such sessions took the router
// from 21 MB to 650 MB of RSS under a 64 MiB max_inbound_total (46 MB
// for 10,000 idle ones), with nothing closed. The leftover is now moved
// to the connection's own buffer, of about its size, counted by its
// capacity (stash.go).
func TestSocketPartialByteHoldsNoRing(t *testing.T) {
	if testing.Short() {
		t.Skip("opens a hundred connections")
	}
	// Not parallel: the heap is the whole process's (socket_memory_test.go).
	s := startServer(t, func(_ *Options, rc *route.Config) { rc.HelloTimeout = time.Hour })
	const n = 100
	w := &wamp{t: t, ser: proto.MsgPack}
	frame := cliFrame(true, opBinary, w.publishMsg(2, "com.pin", []any{make([]byte, 60000)}, true))
	head, tail := frame[:len(frame)-100], append(frame[len(frame)-100:len(frame):len(frame)], 0x82)
	// A warm-up connection first, so that what the loops keep per loop
	// (pools, buffers grown once) is there before the baseline.
	pin := func(conns []int, cs []*wamp) {
		for _, i := range conns {
			cs[i].c.(*wsClient).write(head)
		}
		eventually(t, ioTimeout, "the first parts received", func() bool {
			return s.e.Stats().Inbound >= int64(len(conns)*len(head))
		})
		for _, i := range conns {
			cs[i].c.(*wsClient).write(tail)
		}
		for _, i := range conns {
			cs[i].expect(proto.CodePublished)
		}
	}
	warm := openRawSessions(t, s, 1)
	pin([]int{0}, warm)
	before := s.e.heapBesidePools(t)
	cs := openRawSessions(t, s, n)
	idle := s.e.heapBesidePools(t)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	pin(all, cs)
	after := s.e.heapBesidePools(t)
	st := s.e.Stats()
	perIdle, perPin := (idle-before)/n, (after-before)/n
	t.Logf("heap per connection (server side + test client): idle session %d B, with one byte of a frame pending %d B; the budget counts %d B for the %d",
		perIdle, perPin, st.Inbound, n)
	if perPin > perIdle+4<<10 {
		t.Fatalf("%d B per connection holding one byte of a frame, %d B idle: the rest of its last partial frame's buffer is kept (%d bytes counted for all %d)",
			perPin, perIdle, st.Inbound, n)
	}
	runtime.KeepAlive(warm)
	runtime.KeepAlive(cs)
}

// openRawSessions opens n joined MsgPack WebSocket sessions.
func openRawSessions(t *testing.T, s *testServer, n int) []*wamp {
	t.Helper()
	out := make([]*wamp, n)
	for i := range out {
		out[i] = newWAMP(t, dialWS(t, s.url, proto.MsgPack), proto.MsgPack)
		out[i].join()
	}
	return out
}
