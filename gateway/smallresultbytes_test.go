package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSmallResultsUnreadBoundedByTotal: a call's plain answer (a result,
// or a problem document carrying a callee's ERROR) under writeChunk
// (64 KiB) was written in one Write outside the gateway's
// answer budget (Limits.SSEBufferTotal), so what bounded such answers
// held by clients that do not read was their number (MaxInFlight: about
// 8,192 × 63 KiB gateway-wide). One above net/http's buffers now counts
// in the total while it is written (two atomic adds), and one that would
// take the total past its bound is written as a large one is, where the
// reaper cuts the writes blocked longest.
func TestSmallResultsUnreadBoundedByTotal(t *testing.T) {
	const conns, size, total = 24, 48 << 10, 256 << 10
	for _, tc := range []struct{ name, request string }{
		// Chunked: served by net/http, not the event loop's lane (whose
		// answers count in the loop's max_outbound_total).
		{"bridge", "POST /wamp/realm1/call/com.mid HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{"route", "GET /mid HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"error", "GET /miderr HTTP/1.1\r\nHost: localhost\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Limits.MaxInFlightPerAddress = 2 * conns
				o.Limits.SSEBufferTotal = total
				o.Limits.WriteTimeout = time.Minute // blocked writes last the test unless cut
				o.Routes = []Route{
					{Method: "GET", Path: "/mid", Realm: "realm1", Call: "com.mid", Auth: Auth{Type: "none"}},
					{Method: "GET", Path: "/miderr", Realm: "realm1", Call: "com.miderr", Auth: Auth{Type: "none"}},
				}
			})
			callee := e.dial("realm1", proto.JSON)
			mid := strings.Repeat("m", size)
			var asked atomic.Int64
			e.register(callee, "com.mid", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				asked.Add(1)
				return &client.Result{Args: []any{mid}}, nil
			})
			// A callee's ERROR is as large as a result may be.
			e.register(callee, "com.miderr", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				asked.Add(1)
				return nil, &client.Error{URI: "com.example.mid_err", Args: []any{1, mid}}
			})
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			}}
			var cs []net.Conn
			for i := range conns {
				c, err := d.Dial("tcp", e.gw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				cs = append(cs, c)
				waitWithin(t, 5*time.Second, "the gateway's end of the connection", func() bool { return gatewayEnd(c) >= 0 })
				shrinkGatewaySendBuffer(t, c, 4096)
				if _, err := io.WriteString(c, tc.request); err != nil {
					t.Fatal(err)
				}
				waitWithin(t, 5*time.Second, fmt.Sprintf("request %d answered", i), func() bool { return asked.Load() == int64(i+1) })
			}
			deadline := time.Now().Add(5 * time.Second)
			held := heldResultWriters()
			for held*size > total && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				held = heldResultWriters()
			}
			if held*size > total {
				t.Fatalf("%d connections asking for a %d KiB result each, reading none: %d results (%d KiB) still held in blocked writes after 5 s, %d bytes counted; want at most sse_buffer_total (%d KiB)",
					conns, size>>10, held, held*size>>10, e.gw.sse.bytes.Load(), total>>10)
			}
			// A write the reaper cut gives its bytes back just before its
			// handler returns: counted among the writers a moment longer.
			n := e.gw.sse.bytes.Load()
			for n < int64(held*size) && time.Now().Before(deadline.Add(5*time.Second)) {
				time.Sleep(20 * time.Millisecond)
				held, n = heldResultWriters(), e.gw.sse.bytes.Load()
			}
			if n < int64(held*size) {
				t.Errorf("%d results held, %d bytes counted in the total", held, n)
			}
			resp, err := e.hc.Get(e.base + "/mid")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(b) < size {
				t.Fatalf("a client reading its answer: %d, %d bytes, %v", resp.StatusCode, len(b), err)
			}
			for _, c := range cs {
				c.Close()
			}
			waitFor(t, "the slots and the bytes given back once the writes failed", func() bool {
				return e.gw.inflight.Load() == 0 && heldResultWriters() == 0 && e.gw.sse.bytes.Load() == 0
			})
		})
	}
}
