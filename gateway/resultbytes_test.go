package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestLargeResultsUnreadBoundedByTotal: on net/http, a call's plain
// answer is written by its handler, each 64 KiB piece within
// WriteTimeout, and held until then; what bounded them was their number
// (MaxInFlightPerAddress, 128 by default: 2 GiB of 16 MiB results from
// one address, 16 GiB for one key's 1,024) and a client reading 64 KiB
// per WriteTimeout kept one for 256 of them (43 minutes). The results
// being written now count in Limits.SSEBufferTotal, as event streams'
// frames do, and its reaper cuts the writes blocked longest when it is
// passed: a client that keeps up is never cut.
func TestLargeResultsUnreadBoundedByTotal(t *testing.T) {
	const conns, size, total = 12, 256 << 10, 1 << 20
	for _, tc := range []struct{ name, request string }{
		{"bridge", "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{"route", "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"mapped", "GET /mapped HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"error", "GET /bigerr HTTP/1.1\r\nHost: localhost\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.Limits.MaxInFlightPerAddress = 2 * conns
				o.Limits.SSEBufferTotal = total
				// Blocked writes last the whole test unless cut.
				o.Limits.WriteTimeout = time.Minute
				o.Routes = []Route{
					{Method: "GET", Path: "/big", Realm: "realm1", Call: "com.big", Auth: Auth{Type: "none"}},
					{Method: "GET", Path: "/mapped", Realm: "realm1", Call: "com.big", Auth: Auth{Type: "none"}, Response: Response{Body: "$/args/0"}},
					{Method: "GET", Path: "/bigerr", Realm: "realm1", Call: "com.bigerr", Auth: Auth{Type: "none"}},
				}
			})
			callee := e.dial("realm1", proto.JSON)
			big := strings.Repeat("r", size)
			var asked atomic.Int64
			e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				asked.Add(1)
				return &client.Result{Args: []any{big}}, nil
			})
			// A callee's ERROR is as large as a result may be.
			e.register(callee, "com.bigerr", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				asked.Add(1)
				return nil, &client.Error{URI: "com.example.too_big", Args: []any{1, big}}
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
			// Held: the handlers blocked writing a result nobody reads.
			deadline := time.Now().Add(5 * time.Second)
			held := heldResultWriters()
			for held*size > total && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				held = heldResultWriters()
			}
			if held*size > total {
				t.Fatalf("%d connections asking for a %d KiB result each, reading none: %d results (%d KiB) still held in blocked writes after 5 s; want at most sse_buffer_total (%d KiB)",
					conns, size>>10, held, held*size>>10, total>>10)
			}
			if e.gw.sse.cuts.Load() == 0 {
				t.Fatal("no write counted as cut for sse_buffer_total")
			}
			// A client that reads gets its result whole meanwhile.
			for _, path := range []string{"/big", "/bigerr", "/big"} {
				resp, err := e.hc.Get(e.base + path)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || (path == "/big") != (resp.StatusCode == 200) || len(b) < size {
					t.Fatalf("a client reading its answer of %s: %d, %d bytes, %v", path, resp.StatusCode, len(b), err)
				}
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

// heldResultWriters counts the handlers writing a call's plain answer
// (answerCall, a route's respond) on net/http.
func heldResultWriters() int {
	n := resultWriters()
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "gateway.(*compiledRoute).respond(") {
			n++
		}
	}
	return n
}
