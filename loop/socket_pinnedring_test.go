package loop

import (
	"bufio"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
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
// to the connection's own buffer, counted by its capacity and made about
// its size by the next scan (stash.go).
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
	// An oversized stash is made smaller by the scan (trimStash): measured
	// after one.
	s.e.scanNow(t)
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

// The same over TLS: a partial record waiting for its rest stayed in
// gnet's ring buffer, whose array (16 KiB here) a connection kept while it
// held one byte of the next record, counted as that byte. Now the
// leftover ciphertext is stashed as plaintext input is (conn.wire).
func TestTLSPartialRecordHoldsNoRing(t *testing.T) {
	if testing.Short() {
		t.Skip("opens fifty TLS connections")
	}
	// Not parallel: the heap is the whole process's (socket_memory_test.go).
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(_ *Options, rc *route.Config) { rc.HelloTimeout = time.Hour })
	const n = 50
	hello := []byte(`[1,"realm1",{"roles":{"caller":{}},"pad":"` + strings.Repeat("x", 16000) + `"}]`)
	type sess struct {
		raw  net.Conn
		ws   *wsClient
		rec  []byte
		head int
	}
	open := func(k int, pending bool) []*sess {
		out := make([]*sess, k)
		for i := range out {
			raw, tc, w := tls13Session(t, cert, s.url, 0)
			tc.SetDeadline(time.Time{})
			if _, err := raw.Write(w.seal(23, wsUpgradeRequest("/ws", "wamp.2.json"))); err != nil {
				t.Fatal(err)
			}
			wc := &wsClient{t: t, c: tc, br: bufio.NewReaderSize(tc, 4<<10), ser: proto.JSON, autoPong: true}
			wc.expectUpgrade()
			rec := w.seal(23, cliFrame(true, opText, hello))
			head := len(rec) - 100
			if pending {
				// And the next record's first byte, in a slice of the
				// same size class: append would grow rec's array by a
				// quarter, 4 KiB of the test's own a connection, which
				// was once taken for the router's.
				rec = slices.Concat(rec, w.seal(23, cliFrame(true, opPing, nil))[:1])
			}
			out[i] = &sess{raw: raw, ws: wc, rec: rec, head: head}
		}
		return out
	}
	pin := func(ss []*sess) {
		base := s.e.Stats().Inbound
		for _, x := range ss {
			x.raw.Write(x.rec[:x.head])
		}
		eventually(t, ioTimeout, "the first parts received", func() bool {
			return s.e.Stats().Inbound >= base+int64(len(ss)*ss[0].head)
		})
		for _, x := range ss {
			x.raw.Write(x.rec[x.head:])
		}
		for _, x := range ss {
			newWAMP(t, x.ws, proto.JSON).expect(proto.CodeWelcome)
		}
	}
	// crypto/tls's input buffers go at the second scan without a record
	// (tlsTrim): both groups are measured after it.
	heap := func() int64 {
		for range 2 {
			var wg sync.WaitGroup
			for _, ls := range s.e.allLoops() {
				wg.Add(1)
				if ls.Execute(func() { ls.scan(); wg.Done() }) != nil {
					wg.Done()
				}
			}
			wg.Wait()
		}
		return s.e.heapBesidePools(t)
	}
	warm := open(1, true)
	pin(warm)
	h0 := heap()
	plain := open(n, false) // sessions that joined the same way, nothing pending
	pin(plain)
	h1 := heap()
	ss := open(n, true)
	pin(ss)
	h2 := heap()
	st := s.e.Stats()
	perJoined, perPin := (h1-h0)/n, (h2-h1)/n
	t.Logf("heap per TLS connection (server side + test client): joined %d B, joined with one byte of a record pending %d B; the budget counts %d B for the %d",
		perJoined, perPin, st.Inbound, n+1)
	// The byte costs the router its stash (stashMin, 512 bytes, counted
	// in the budget) and nothing else: 2 KiB leaves room for the heap's
	// noise at n = 50 (±150 bytes measured).
	if perPin > perJoined+2<<10 {
		t.Fatalf("%d B per TLS connection holding one byte of a record, %d B without: the rest of its last partial record's buffer is kept (%d bytes counted for all %d)",
			perPin, perJoined, st.Inbound, n+1)
	}
	runtime.KeepAlive(plain)
	runtime.KeepAlive(warm)
	runtime.KeepAlive(ss)
}
