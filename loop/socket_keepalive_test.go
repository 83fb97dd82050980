package loop

import (
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// keepaliveServer pings after 1 s of silence and gives up 1 s later. The
// scan runs once a second, so a silent peer is closed 2-4 s after its last
// byte; the tests wait far longer before calling it a failure, and watch a
// well-behaved peer for longer than that before calling it a success.
func keepaliveServer(t *testing.T, idle time.Duration) *testServer {
	return startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval = time.Second
		o.PingTimeout = time.Second
		o.IdleTimeout = idle
	})
}

// stayUp is how long a well-behaved peer is watched: several ping cycles.
const stayUp = 3500 * time.Millisecond

// closedWithin waits for the router to close c (by its side's state: the
// connection leaves its loop), without reading from c.
func closedWithin(t *testing.T, s *testServer, c net.Conn, d time.Duration) {
	t.Helper()
	eventually(t, d, "the router to close the connection", func() bool {
		_, ok := s.e.statOf(t, c)
		return !ok
	})
}

func TestSocketKeepalive(t *testing.T) {
	t.Parallel()
	s := keepaliveServer(t, 0)
	h := newHealthy(s) // the client package answers pings

	t.Run("ws-answers", func(t *testing.T) {
		t.Parallel()
		w := dialWS(t, s.url, proto.JSON)
		p := newWAMP(t, w, proto.JSON)
		p.join()
		// Read (and answer pings) for a while, sending nothing else.
		if _, err := w.readMsg(stayUp); !isTimeout(err) {
			t.Fatalf("while idle: %v", err)
		}
		if w.pings == 0 {
			t.Fatal("no ping in an idle period of several ping intervals")
		}
		if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
			t.Fatalf("after %d pings: %v", w.pings, m.Type)
		}
	})
	t.Run("ws-never-reads", func(t *testing.T) {
		t.Parallel()
		w := dialWS(t, s.url, proto.JSON)
		newWAMP(t, w, proto.JSON).join()
		closedWithin(t, s, w.c, 20*time.Second)
	})
	t.Run("ws-reads-never-pongs", func(t *testing.T) {
		t.Parallel()
		w := dialWS(t, s.url, proto.MsgPack)
		newWAMP(t, w, proto.MsgPack).join()
		w.autoPong = false
		_, err := w.readMsg(20 * time.Second)
		if !isClosedErr(err) {
			t.Fatalf("want the connection closed, got %v", err)
		}
		if w.pings == 0 {
			t.Fatal("closed without a ping")
		}
	})
	t.Run("ws-unsolicited-pongs", func(t *testing.T) {
		// Pongs (heartbeats) and pings from the client are traffic too.
		t.Parallel()
		w := dialWS(t, s.url, proto.JSON)
		p := newWAMP(t, w, proto.JSON)
		p.join()
		w.autoPong = false
		end := time.Now().Add(stayUp)
		for time.Now().Before(end) {
			w.write(cliFrame(true, opPong, []byte("hb")))
			time.Sleep(300 * time.Millisecond)
		}
		if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
			t.Fatalf("heartbeating client: %v", m.Type)
		}
	})
	t.Run("rs-answers", func(t *testing.T) {
		t.Parallel()
		r := dialRS(t, s.url, proto.CBOR, 15)
		p := newWAMP(t, r, proto.CBOR)
		p.join()
		if _, err := r.readMsg(stayUp); !isTimeout(err) {
			t.Fatalf("while idle: %v", err)
		}
		if r.pings == 0 {
			t.Fatal("no PING in an idle period of several ping intervals")
		}
		if m := p.call("wamp.session.count", nil); m.Type != proto.CodeResult {
			t.Fatalf("after %d PINGs: %v", r.pings, m.Type)
		}
	})
	t.Run("rs-never-answers", func(t *testing.T) {
		t.Parallel()
		r := dialRS(t, s.url, proto.JSON, 15)
		newWAMP(t, r, proto.JSON).join()
		r.autoPong = false
		_, err := r.readMsg(20 * time.Second)
		if !isClosedErr(err) {
			t.Fatalf("want the connection closed, got %v", err)
		}
		if r.pings == 0 {
			t.Fatal("closed without a PING")
		}
	})
	t.Run("rs-never-reads", func(t *testing.T) {
		t.Parallel()
		r := dialRS(t, s.url, proto.JSON, 15)
		newWAMP(t, r, proto.JSON).join()
		closedWithin(t, s, r.c, 20*time.Second)
	})
	t.Run("before-hello", func(t *testing.T) {
		// A transport that has not said HELLO is pinged too, and closed
		// when it does not answer.
		t.Parallel()
		r := dialRS(t, s.url, proto.JSON, 15)
		r.autoPong = false
		_, err := r.readMsg(20 * time.Second)
		if !isClosedErr(err) {
			t.Fatalf("want the connection closed, got %v", err)
		}
	})
	h.check()
}

// IdleTimeout closes a connection with no inbound traffic at all, even if
// it is written to; answering pings counts as traffic.
func TestSocketIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.PingInterval = -1
		o.IdleTimeout = 2 * time.Second
	})
	w := dialWS(t, s.url, proto.JSON)
	newWAMP(t, w, proto.JSON).join()
	began := time.Now()
	_, err := w.readMsg(20 * time.Second)
	if !isClosedErr(err) {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if el := time.Since(began); el < 500*time.Millisecond {
		t.Fatalf("closed after %v, well before the 2 s idle timeout", el)
	}
	// (Every idle session goes, the client package's too: with pings off
	// nothing keeps them alive.) New sessions are served.
	newHealthy(s)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
