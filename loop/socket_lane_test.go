package loop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// holdConn collects what is written to it while held, and sends it in one
// write on release, so that several TLS records reach the router in one
// segment (one OnTraffic).
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  bytes.Buffer
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		return h.buf.Write(p)
	}
	return h.Conn.Write(p)
}

func (h *holdConn) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	_, err := h.Conn.Write(h.buf.Bytes())
	h.buf.Reset()
	return err
}

// A TLS client that sends a message and then its close_notify (CloseWrite,
// a half-close) in one segment: the message is routed, as the same bytes
// followed by a TCP FIN are on a plaintext connection. (Before the fix the
// decrypted message was dropped: tlsRead marked the connection dead on the
// close_notify before parse ran.)
func TestTLSDataBeforeCloseNotify(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, true, nil)
	plainAddr := s.e.Addrs()[1].String()
	sub := subscribeRaw(t, dialTCP(t, plainAddr, 0), "com.review.topic")

	// The plaintext behaviour the TLS one must match: a message followed
	// by FIN in one segment is routed.
	{
		c := dialTCP(t, plainAddr, 0)
		ser := proto.MsgPack
		p := rawPeerOnConn(t, c, "rs", ser)
		w := newWAMP(t, p.mc, ser)
		w.join()
		b := p.data(w.publishMsg(w.nextReq(), "com.review.topic", []any{"last words"}, false))
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		if a := args(t, sub.expect(proto.CodeEvent)); len(a) != 1 || a[0] != "last words" {
			t.Fatalf("plaintext: event args %v", a)
		}
	}
	for _, v := range tlsVersions {
		raw := dialTCP(t, s.url, 0)
		hc := &holdConn{Conn: raw}
		tc := tlsClientOn(t, hc, cert.clientFor(v))
		ser := proto.MsgPack
		p := rawPeerOnConn(t, tc, "rs", ser)
		w := newWAMP(t, p.mc, ser)
		w.join()

		raw.SetDeadline(time.Now().Add(ioTimeout))
		hc.mu.Lock()
		hc.hold = true
		hc.mu.Unlock()
		if _, err := tc.Write(p.data(w.publishMsg(w.nextReq(), "com.review.topic", []any{"last words"}, false))); err != nil {
			t.Fatal(err)
		}
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		raw.SetWriteDeadline(time.Now().Add(ioTimeout)) // closeNotify left it at now
		if err := hc.release(); err != nil {
			t.Fatal(err)
		}
		m := sub.expect(proto.CodeEvent)
		if a := args(t, m); len(a) != 1 || a[0] != "last words" {
			t.Fatalf("event args %v", a)
		}
		raw.Close()
	}
}

// tlsClientOn completes a TLS handshake over c.
func tlsClientOn(t testing.TB, c net.Conn, cfg *tls.Config) *tls.Conn {
	t.Helper()
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	return tc
}

// reviewLane answers "/big" at once with a body of bigBody bytes and hands
// every other request to net/http (here: closes it).
type reviewLane struct{ bigBody int }

func (l reviewLane) Serve(r *http.Request, body []byte, w LaneWriter) bool {
	if r.URL.Path != "/big" {
		return false
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(l.bigBody) + "\r\n\r\n")
	w.Respond(append(resp, make([]byte, l.bigBody)...), false)
	return true
}

func (reviewLane) HandOff(c net.Conn) { c.Close() }

func laneServer(t *testing.T, idle time.Duration) *testServer {
	return startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 64 << 10}, IdleTimeout: idle}
	})
}

// laneBackUp sends requests the lane answers, on a connection that never
// reads, until some of the answers wait in gnet's buffer (the kernel's
// socket buffers are full).
func laneBackUp(t *testing.T, s *testServer, c net.Conn) connStat {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		st, ok := s.e.statOf(t, c)
		if !ok {
			t.Fatal("the connection closed")
		}
		if st.backlog > 0 {
			return st
		}
	}
	t.Fatal("the answers never backed up")
	return connStat{}
}

// An HTTP lane peer that does not read its answers, then sends a request
// that must go to net/http: the hand-over waits for the answers to drain,
// which never happens. The connection must not be held forever: like a
// peer blocked by its unread answers, it is closed after the lane's idle
// timeout. (Before the fix laneDeadlines retried the hand-over once a
// second without end, holding the descriptor and the unread answers.)
func TestLaneHandOffUnreadClosed(t *testing.T) {
	t.Parallel()
	s := laneServer(t, time.Second)
	c := dialTCP(t, s.url, 4096)
	if st := laneBackUp(t, s, c); st.backlog > defaultHighWater {
		t.Fatalf("backlog %d already over the high-water mark", st.backlog)
	}
	if _, err := c.Write([]byte("GET /other HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 8*time.Second, "the connection to close", func() bool {
		_, open := s.e.statOf(t, c)
		return !open
	})
}

// An HTTP lane peer blocked because it does not read its answers keeps its
// connection by sending a byte now and then: the lane's idle timeout for
// unread answers ("answers left unread for the idle timeout") must count
// from when the answers backed up, not from the peer's last byte. (Before
// the fix each byte restarted it.)
func TestLaneBlockedTrickleClosed(t *testing.T) {
	t.Parallel()
	s := laneServer(t, time.Second)
	c := dialTCP(t, s.url, 4096)
	for {
		st := laneBackUp(t, s, c)
		if st.backlog > defaultHighWater {
			break
		}
	}
	stop := time.Now().Add(8 * time.Second)
	for time.Now().Before(stop) {
		if _, open := s.e.statOf(t, c); !open {
			return
		}
		if _, err := c.Write([]byte("G")); err != nil {
			return // closed
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatal("a peer that never reads its answers held its connection past the idle timeout by sending a byte every 300 ms")
}

// bodyLane answers "/echo" with what it reads from r.Body, as a Lane
// written against net/http's habits would, and hands the rest over.
type bodyLane struct{}

func (bodyLane) Serve(r *http.Request, body []byte, w LaneWriter) bool {
	if r.URL.Path != "/echo" {
		return false
	}
	got, _ := io.ReadAll(r.Body)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(got)) + "\r\n\r\n")
	w.Respond(append(resp, got...), false)
	return true
}

func (bodyLane) HandOff(c net.Conn) { c.Close() }

// The Lane contract says r.Body is http.NoBody. It was the reader
// net/http's parser left over the loop's shared head reader: a request
// whose body arrived after its head read, through it, what was left there
// of another connection's head (here a header the parser stopped before).
func TestLaneBodyIsNoBody(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1 // one loop: both connections share its head reader
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: bodyLane{}}
	})
	a := dialTCP(t, s.url, 0)
	if _, err := a.Write([]byte("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "A's head to be read", func() bool {
		st, ok := s.e.statOf(t, a)
		return ok && st.inbound > 0
	})
	time.Sleep(50 * time.Millisecond)
	b := dialTCP(t, s.url, 0)
	if _, err := b.Write([]byte("GET /x HTTP/1.1\r\nnot a header\r\nCookie: secret\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, b, ioTimeout) // handed to "net/http"
	if _, err := a.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(a)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if len(got) != 0 {
		t.Fatalf("r.Body gave %q, want http.NoBody", got)
	}
}

// Stats counts the HTTP lane's connections and closes apart from the WAMP
// listeners': Conns and Closes are the WAMP listeners' (what
// edgewamp_connections and edgewamp_connections_closed_total export, "on
// the WAMP listeners"), LaneConns and LaneCloses the lane's; FDs holds
// both. Found by review: Stats summed every listener, so the gateway's
// idle HTTP connections read as WAMP connections.
func TestLaneStatsApart(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0"}, {Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 16}, IdleTimeout: time.Minute}
	})
	laneAddr := s.e.Addrs()[1].String()
	if st := s.e.Stats(); !st.Lane || st.Conns != 0 || st.LaneConns != 0 {
		t.Fatalf("at start: lane %v, conns %d, lane conns %d", st.Lane, st.Conns, st.LaneConns)
	}
	wamp := dialTCP(t, s.url, 0)
	defer wamp.Close()
	const n = 5
	var lane []net.Conn
	for range n {
		c := dialTCP(t, laneAddr, 0)
		defer c.Close()
		lane = append(lane, c)
	}
	eventually(t, 5*time.Second, "the connections counted", func() bool {
		st := s.e.Stats()
		return st.Conns == 1 && st.LaneConns == n && st.FDs >= n+1
	})
	for _, c := range lane {
		c.Close()
	}
	eventually(t, 5*time.Second, "the lane's closes counted", func() bool {
		st := s.e.Stats()
		return st.LaneConns == 0 && st.LaneCloses[ClosePeer] == n
	})
	st := s.e.Stats()
	for r, v := range st.Closes {
		if v != 0 {
			t.Errorf("Closes[%s] = %d with no WAMP connection closed", CloseReason(r), v)
		}
	}
	if st.Conns != 1 {
		t.Errorf("Conns = %d, want the WAMP listener's 1", st.Conns)
	}
	// Without a lane, Lane is false.
	if st := startServer(t, nil).e.Stats(); st.Lane {
		t.Error("Lane with no HTTPLane listener")
	}
}
