package loop

import (
	"bytes"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A HEAD of the health path is answered as its GET is, without the body
// ([RFC9110 §9.3.2]: The HEAD method is identical to GET except that the
// server MUST NOT send content in the response; [§9.1]: All
// general-purpose servers MUST support the methods GET and HEAD).
// Orchestrators' checks often send HEAD (HAProxy's `http-check send meth
// HEAD`, `curl -I`, GNU `wget --spider`); before, it got 405 and the check
// took a healthy router for down.
func TestHealthzHeadAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c := dialTCP(t, s.url, 0)
	c.Write([]byte("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	got := waitClosed(t, c, ioTimeout)
	hdr, body, _ := strings.Cut(string(got), "\r\n\r\n")
	if !strings.HasPrefix(hdr, "HTTP/1.1 200 ") || !strings.Contains(hdr, "\r\nContent-Length: 2") || body != "" {
		t.Fatalf("HEAD /healthz answered %q", got)
	}
}

// The health path is answered 200 past the listener's max_connections:
// a full router is alive. Before, it got the 503 of an upgrade past the
// cap, and an orchestrator's liveness check at GET /healthz on the
// listener (README: what a container should use) restarted a router
// that was only full, ending every session it held. The upgrades past the
// cap are still refused.
func TestHealthzAnsweredPastMaxConns(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) { o.Listeners[0].MaxConns = 2 })
	a := newWAMP(t, dialWS(t, s.url, proto.JSON), proto.JSON)
	a.join()
	b := newWAMP(t, dialRS(t, s.url, proto.MsgPack, 15), proto.MsgPack)
	b.join()
	for _, req := range []string{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c := dialTCP(t, s.url, 0)
		c.Write([]byte(req))
		got := waitClosed(t, c, ioTimeout)
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 200 ")) {
			t.Fatalf("%q past the cap answered %q", strings.Fields(req)[0], got)
		}
	}
	c := dialTCP(t, s.url, 0)
	c.Write(wsUpgradeRequest("/ws", "wamp.2.json"))
	if r := readHTTPResponse(t, newReader(c), c); r.status != 503 {
		t.Fatalf("upgrade past the cap: %d", r.status)
	}
	if m := a.call("wamp.session.count", nil); m.Type != proto.CodeResult {
		t.Fatalf("session inside the cap: %v", m.Type)
	}
}
