package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// The HTTP bridge's clients without credentials share the realm's
// anonymous principal, and its pooled WAMP sessions: a retained event
// they publish counts in the share of the client's address
// (route.Config.MaxRetainedPerPublisher), not in one share of every such
// client, so that one client cannot take the others' retained events. A
// client from 127.0.0.1 fills its share; one from 127.0.0.2 still
// retains.
func TestBridgeRetainedSharePerClientAddress(t *testing.T) {
	e := newEnvRoute(t, func(c *route.Config) { c.MaxRetainedPerPublisher = 2 }, nil)
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		tr := &http.Transport{DialContext: d.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	publish := func(hc *http.Client, topic string) {
		t.Helper()
		resp, err := hc.Post(e.base+"/wamp/realm1/publish/"+topic, "application/json",
			strings.NewReader(`{"args":["v"],"options":{"acknowledge":true,"retain":true}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("publish %s: %d", topic, resp.StatusCode)
		}
	}
	a, b := from("127.0.0.1"), from("127.0.0.2")
	publish(a, "com.a.1")
	publish(a, "com.a.2")
	publish(a, "com.a.3") // past its address's share: published, not retained
	publish(b, "com.b.1")
	if n := e.r.Stats().RetainRefusedPublisher; n != 1 {
		t.Fatalf("%d retained events refused for their publisher's share, want 1 (the third of 127.0.0.1)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.b.1?retained=true", "")
	if ev, err := sse.next(); err != nil || !strings.Contains(ev.data, `"retained":true`) {
		t.Fatalf("127.0.0.2's retained event: %+v (%v)", ev, err)
	}
}
