package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestPlainResultHeldInFlightUntilWritten: on net/http, a call's plain
// (not streamed) answer stopped counting among the requests in flight
// before it was written: the slot of MaxInFlightPerAddress was released
// when the result came, and answerCall then wrote it, each 64 KiB piece
// within WriteTimeout, to a client that reads slowly or not at all. One
// address opening a connection after another, each asking for a large
// result and reading none of it, had every result held by a handler
// blocked in its write, bounded only by MaxConnections × the result's
// size, whatever MaxInFlightPerAddress said. The slot is now held until
// the answer is written (or its write fails or times out): past the bound
// the address is refused 429, and the callee is not asked for more
// results than the bound. The bridge's call (here with a chunked body,
// which the event loop's lane hands to net/http) and a declarative route;
// and the lane's twin: its answer, queued to the loop's connection, gave
// the slots back as it was queued, so each connection held one unread
// answer outside them; it now holds them until the loop has written it
// (loop.LaneWriter.OnWritten), and the gateway's shutdown does not wait
// for such answers.
func TestPlainResultHeldInFlightUntilWritten(t *testing.T) {
	const perAddr, conns, size = 2, 8, 256 << 10
	for _, tc := range []struct{ name, request string }{
		{"bridge", "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{"route", "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"lane", "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "lane" && os.Getenv("EDGEWAMP_TEST_GATEWAY_LANE") == "off" {
				t.Skip("the event loop's lane is off")
			}
			e := newEnv(t, func(o *Options) {
				o.Limits.MaxInFlightPerAddress = perAddr
				// The blocked writes last the whole test: they end when
				// its clients close.
				o.Limits.WriteTimeout = time.Minute
				o.Routes = []Route{{Method: "GET", Path: "/big", Realm: "realm1", Call: "com.big", Auth: Auth{Type: "none"}}}
			})
			callee := e.dial("realm1", proto.JSON)
			big := strings.Repeat("r", size)
			var asked atomic.Int64
			e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				asked.Add(1)
				return &client.Result{Args: []any{big}}, nil
			})
			// One client address, one connection after another, each with a
			// 4 KiB receive window and the gateway's end of it a small send
			// buffer, never reading: each waits until its request is
			// refused or its answer's write blocks.
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
				waitWithin(t, 5*time.Second, fmt.Sprintf("request %d refused or its answer's write blocked", i), func() bool {
					if tc.name == "lane" {
						// The loop queues the answer: it is held once it
						// is answered (200) or refused (429).
						lbl := e.gw.laneLbl
						return int(lbl.codes[200].Load()+lbl.codes[429].Load()) == i+1
					}
					return int(refusals(e.gw, refusedAddress))+resultWriters() == i+1
				})
			}
			held, refused := resultWriters(), refusals(e.gw, refusedAddress)
			if tc.name == "lane" {
				held = int(asked.Load()) // each answered, queued to a client that reads none of it
			}
			if held > perAddr || asked.Load() != perAddr || refused != conns-perAddr || e.gw.inflight.Load() != perAddr {
				t.Fatalf("%d connections of one address asking for a %d KiB result each, reading none: %d results (%d KiB) held in blocked writes, the callee asked %d times, %d refused 429, %d requests counted in flight; want at most %d held (max_in_flight_per_address), %d refused",
					conns, size>>10, held, held*size>>10, asked.Load(), refused, e.gw.inflight.Load(), perAddr, conns-perAddr)
			}
			// The refused ones got their 429.
			for _, c := range cs[perAddr:] {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("a request past the bound: %v %v, want 429", resp, err)
				}
			}
			if tc.name == "lane" {
				// The gateway's shutdown does not wait for the lane's
				// unread answers (the engine's closes their connections).
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := e.gw.Shutdown(ctx)
				cancel()
				if err != nil {
					t.Fatalf("the gateway's shutdown with %d lane answers unread: %v", perAddr, err)
				}
			}
			// The writers' clients go: their slots come back.
			for _, c := range cs {
				c.Close()
			}
			waitFor(t, "the slots released once the writes failed", func() bool {
				return e.gw.inflight.Load() == 0 && addrEntries(e.gw) == 0 && resultWriters() == 0
			})
		})
	}
}

// gatewayEnd returns the descriptor of the gateway's end of c, -1 while
// it has not been accepted.
func gatewayEnd(c net.Conn) int {
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	return findSocket(local.Port, remote.Port)
}

// resultWriters counts the handlers writing a call's plain answer
// (answerCall), which a client that does not read holds blocked.
func resultWriters() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "gateway.(*Server).answerCall(") && !strings.Contains(g, "gateway.(*laneCall)") {
			n++
		}
	}
	return n
}

// findSocket returns a descriptor of this process whose IPv4 socket has
// local port me and peer port peer, or -1.
func findSocket(peer, me int) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err1 := syscall.Getpeername(fd)
		m, err2 := syscall.Getsockname(fd)
		p4, ok1 := p.(*syscall.SockaddrInet4)
		m4, ok2 := m.(*syscall.SockaddrInet4)
		if err1 == nil && err2 == nil && ok1 && ok2 && p4.Port == peer && m4.Port == me {
			return fd
		}
	}
	return -1
}
