package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Shutdown says GOODBYE wamp.close.system_shutdown to established sessions,
// closes them once they answer (or at GoodbyeTimeout), refuses connections
// meanwhile, and returns.
func TestSocketShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(_ *Options, rc *route.Config) { rc.GoodbyeTimeout = 2 * time.Second })

	w := dialWS(t, s.url, proto.JSON)
	wp := newWAMP(t, w, proto.JSON)
	wp.join()
	r := dialRS(t, s.url, proto.MsgPack, 15)
	rp := newWAMP(t, r, proto.MsgPack)
	rp.join()
	mute := dialWS(t, s.url, proto.CBOR) // never answers GOODBYE
	newWAMP(t, mute, proto.CBOR).join()
	cs := s.dialCfg(client.Config{URL: "ws://" + s.url + "/ws", Serializer: proto.MsgPack})
	pending := dialTCP(t, s.url, 0) // in the middle of its HTTP request
	pending.Write([]byte("GET /ws HTTP/1.1\r\n"))
	joining := dialWS(t, s.url, proto.JSON) // upgraded, no HELLO yet

	began := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- s.e.Shutdown(ctx)
	}()

	m := wp.expect(proto.CodeGoodbye)
	if string(m.URI) != proto.CloseSystemShutdown {
		t.Fatalf("GOODBYE %q", m.URI)
	}
	if m := rp.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseSystemShutdown {
		t.Fatalf("RawSocket GOODBYE %q", m.URI)
	}
	// The transport that had not joined gets ABORT.
	if m := newWAMP(t, joining, proto.JSON).expect(proto.CodeAbort); string(m.URI) != proto.CloseSystemShutdown {
		t.Fatalf("ABORT %q", m.URI)
	}

	// While sessions are closing, new connections are refused: the
	// listener is closed (connection refused), and one that got in before
	// gets no upgrade, no RawSocket handshake reply.
	for range 3 {
		for _, hello := range [][]byte{wsUpgradeRequest("/ws", "wamp.2.json"), rsHandshake(proto.JSON, 15)} {
			c, err := net.DialTimeout("tcp", s.url, ioTimeout)
			if err != nil {
				continue
			}
			c.Write(hello)
			got := waitClosed(t, c, ioTimeout)
			c.Close()
			if len(got) > 0 {
				t.Fatalf("new connection during shutdown answered: %q", got)
			}
		}
	}
	if c, err := net.DialTimeout("tcp", s.url, ioTimeout); err == nil {
		c.Close()
		t.Fatal("the listener still accepts during shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before the sessions answered GOODBYE", err)
	default:
	}

	// Answer: the router closes each transport.
	w.send(wp.goodbye())
	w.expectClose(1000)
	r.send(rp.goodbye())
	if _, err := r.readMsg(ioTimeout); !isClosedErr(err) {
		t.Fatalf("RawSocket after GOODBYE: %v", err)
	}
	// The mute session is closed at GoodbyeTimeout, the half-open HTTP
	// request with the engine.
	mute.expectClose(1000)
	waitClosed(t, pending, ioTimeout)

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	t.Logf("Shutdown took %v (GoodbyeTimeout 2 s)", time.Since(began).Round(time.Millisecond))
	select {
	case <-cs.Done():
	case <-time.After(ioTimeout):
		t.Fatal("client package session still open")
	}
	if n := s.r.SessionCount(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	// A second Shutdown (the test's cleanup does one too) is harmless.
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := s.e.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
