package loop

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// logSink collects an engine's log lines (JSON). Safe for concurrent use.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// closes returns the "connection closed" lines, by remote address.
func (l *logSink) closes(t testing.TB) map[string][]map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "connection closed" {
			r, _ := m["remote"].(string)
			out[r] = append(out[r], m)
		}
	}
	return out
}

func (l *logSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Each way a connection ends is recorded once: counted under its reason in
// Engine.Stats and logged in one line carrying that reason.
func TestSocketCloseReasons(t *testing.T) {
	var sink logSink
	clk := newFakeClock()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Logger = sink.logger()
		o.MaxMessage = 64 << 10
		o.HandshakeTimeout = time.Minute
		o.Now = clk.Now
	})
	cases := []struct {
		want CloseReason
		run  func(t *testing.T) net.Conn // returns the client side, once the router has closed it or will
	}{
		{ClosePeer, func(t *testing.T) net.Conn {
			r := dialRS(t, s.url, proto.JSON, 15)
			r.c.Close()
			return r.c
		}},
		{CloseReset, func(t *testing.T) net.Conn {
			r := dialRS(t, s.url, proto.JSON, 15)
			newWAMP(t, r, proto.JSON).join()
			resetConn(r.c)
			return r.c
		}},
		{CloseSession, func(t *testing.T) net.Conn {
			r := dialRS(t, s.url, proto.JSON, 15)
			w := newWAMP(t, r, proto.JSON)
			w.join()
			r.send(w.goodbye())
			w.expect(proto.CodeGoodbye)
			waitClosed(t, r.c, ioTimeout)
			return r.c
		}},
		{CloseWSClose, func(t *testing.T) net.Conn {
			w := dialWS(t, s.url, proto.JSON)
			w.write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
			w.expectClose(1000)
			return w.c
		}},
		{CloseProtocol, func(t *testing.T) net.Conn {
			w := dialWS(t, s.url, proto.JSON)
			w.write(wsFrameBytes(0x81, []byte("unmasked"), true))
			w.expectClose(1002)
			return w.c
		}},
		{CloseTooBig, func(t *testing.T) net.Conn {
			r := dialRS(t, s.url, proto.JSON, 15)
			r.write([]byte{0, 0x10, 0, 0}) // 1 MiB announced, over the 64 KiB limit
			waitClosed(t, r.c, ioTimeout)
			return r.c
		}},
		{CloseHandshake, func(t *testing.T) net.Conn {
			c := dialTCP(t, s.url, 0)
			c.Write([]byte{0x7f, 0xf9, 0, 0}) // serializer 9
			if got := waitClosed(t, c, ioTimeout); !bytes.Equal(got, []byte{0x7f, 0x10, 0, 0}) {
				t.Fatalf("reply % x", got)
			}
			return c
		}},
		{CloseHTTP, func(t *testing.T) net.Conn {
			c := dialTCP(t, s.url, 0)
			c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
			waitClosed(t, c, ioTimeout)
			return c
		}},
		{CloseNotWAMP, func(t *testing.T) net.Conn {
			c := dialTCP(t, s.url, 0)
			c.Write([]byte{0x16, 0x03, 0x01})
			if got := waitClosed(t, c, ioTimeout); len(got) != 0 {
				t.Fatalf("answered %q", got)
			}
			return c
		}},
		{CloseHandshakeTimeout, func(t *testing.T) net.Conn {
			c := dialTCP(t, s.url, 0)
			c.Write([]byte("GET /ws HTTP/1.1\r\n"))
			eventually(t, ioTimeout, "the connection to reach its loop", func() bool { return s.openAt(c) })
			s.tick(clk, time.Minute+time.Second)
			waitClosed(t, c, ioTimeout)
			return c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.want.String(), func(t *testing.T) {
			before := s.e.Stats().Closes
			c := tc.run(t)
			eventually(t, ioTimeout, "the close to be counted", func() bool {
				return s.e.Stats().Closes[tc.want] == before[tc.want]+1
			})
			after := s.e.Stats().Closes
			for r := range after {
				if r != int(tc.want) && after[r] != before[r] {
					t.Fatalf("also counted as %v", CloseReason(r))
				}
			}
			lines := sink.closes(t)[c.LocalAddr().String()]
			if len(lines) != 1 || lines[0]["reason"] != tc.want.String() {
				t.Fatalf("log lines for the connection: %v", lines)
			}
			wantLevel := "DEBUG"
			if tc.want.abnormal() {
				wantLevel = "INFO"
			}
			if lines[0]["level"] != wantLevel {
				t.Fatalf("logged at %v, want %s", lines[0]["level"], wantLevel)
			}
		})
	}
}

// Close log lines are rate-limited: a burst of closes logs at most
// closeLogsPerSecond lines a second, and the lines left out are counted
// (Stats.CloseLogsSuppressed) and reported by the next line logged.
func TestSocketCloseLogRateLimited(t *testing.T) {
	var sink logSink
	s := startServer(t, func(o *Options, _ *route.Config) { o.Logger = sink.logger() })
	const n = 300
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 6 {
				c, err := net.Dial("tcp", s.url)
				if err != nil {
					t.Errorf("dial %d: %v", g, err)
					return
				}
				c.Write([]byte{0}) // not WAMP: closed at once
				c.SetReadDeadline(time.Now().Add(ioTimeout))
				c.Read(make([]byte, 1))
				c.Close()
			}
		}()
	}
	wg.Wait()
	eventually(t, ioTimeout, "every close counted", func() bool { return s.e.Stats().Closes[CloseNotWAMP] == n })
	logged := 0
	for _, l := range sink.closes(t) {
		logged += len(l)
	}
	st := s.e.Stats()
	if uint64(logged)+st.CloseLogsSuppressed != n {
		t.Fatalf("%d lines logged + %d suppressed, want %d", logged, st.CloseLogsSuppressed, n)
	}
	if st.CloseLogsSuppressed == 0 {
		t.Fatalf("no line suppressed among %d closes", n)
	}
	t.Logf("%d closes: %d lines logged, %d suppressed", n, logged, st.CloseLogsSuppressed)
}

// On the shared port, bytes that cannot start an HTTP request or a
// RawSocket handshake are closed at once, unanswered, not after the
// handshake timeout (10 s by default; an hour here).
func TestSocketNotWAMPClosedAtOnce(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.HandshakeTimeout = time.Hour })
	h := newHealthy(s)
	for _, first := range [][]byte{
		{0x16, 0x03, 0x01, 0x00, 0xa5}, // TLS ClientHello
		{0x00},
		[]byte("SSH-2.0-OpenSSH_9.6\r\n"),
		[]byte("\r\n"),
		[]byte("get1 / HTTP/1.1\r\n"), // a lower-case method is answered (TestSocketHTTP10UpgradeAndLowerCaseMethodAnswered)
	} {
		c := dialTCP(t, s.url, 0)
		c.Write(first)
		if got := waitClosed(t, c, ioTimeout); len(got) != 0 {
			t.Fatalf("%q answered %q", first, got)
		}
	}
	if n := s.e.Stats().Closes[CloseNotWAMP]; n != 5 {
		t.Fatalf("%d not-WAMP closes, want 5", n)
	}
	h.check()
}

// A Sec-WebSocket-Key that is not the base64 of 16 bytes, or that appears
// twice, gets 400 (RFC 6455 §4.2.1, §11.3.1), not 101.
func TestSocketWSBadKey(t *testing.T) {
	s := startServer(t, nil)
	good := string(wsUpgradeRequest("/ws", "wamp.2.json"))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	for _, req := range []string{
		strings.Replace(good, key, "not base64 at all!!!!!!!", 1),
		strings.Replace(good, key, "AAAAAAAAAAAAAAAAAAAA", 1), // 15 bytes
		strings.Replace(good, "\r\n\r\n", "\r\nSec-WebSocket-Key: "+key+"\r\n\r\n", 1),
	} {
		c := dialTCP(t, s.url, 0)
		c.Write([]byte(req))
		if r := readHTTPResponse(t, newReader(c), c); r.status != 400 {
			t.Fatalf("status %d for\n%s", r.status, req)
		}
	}
	dialWS(t, s.url, proto.JSON) // the good key still upgrades
}
