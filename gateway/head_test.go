package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadDoesNotCall: ServeMux serves HEAD with a GET route's handler,
// so a HEAD of a GET route made its WAMP call (or publication): side
// effects for a method RFC 9110 §9.2.1 calls safe, and a HEAD answered
// with a call's headers but none of its body. A route's HEAD is now 405
// with Allow, as the bridge's event streams' is, and OPTIONS' Allow
// agrees (neither names HEAD).
func TestHeadDoesNotCall(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: "com.head.state"},
			{Name: "poke", Method: "GET", Path: "/devices/{id}/poke", Realm: "realm1", Publish: "com.head.poke"},
		}
	})
	var calls, events atomic.Int64
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.head.state", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{Args: []any{"on"}}, nil
	})
	if _, err := s.Subscribe(context.Background(), "com.head.poke", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/devices/1/state", "/devices/1/poke", "/wamp/realm1/events/com.head.poke"} {
		r, _ := e.do("HEAD", path, "")
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") == "" || strings.Contains(r.Header.Get("Allow"), "HEAD") {
			t.Fatalf("HEAD %s: %d, Allow %q; want 405 with an Allow without HEAD", path, r.StatusCode, r.Header.Get("Allow"))
		}
	}
	if r, _ := e.do("OPTIONS", "/devices/1/state", ""); strings.Contains(r.Header.Get("Allow"), "HEAD") {
		t.Fatalf("OPTIONS: Allow %q names HEAD", r.Header.Get("Allow"))
	}
	// GET still calls; then nothing else may have come.
	if r, body := e.do("GET", "/devices/1/state", ""); r.StatusCode != 200 {
		t.Fatalf("GET: %d %s", r.StatusCode, body)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1 (the GET's): a HEAD called", n)
	}
	if n := events.Load(); n != 0 {
		t.Fatalf("%d events: a HEAD published", n)
	}
}
