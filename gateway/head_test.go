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

// TestHeadOfGetRoute: RFC 9110 §9.3.2 asks a server to answer HEAD for
// every resource it answers GET for, with the GET's status and header
// fields and no content. A route's HEAD was 405. It is now answered as
// the GET, without the call: a result's status and Content-Type, no
// Content-Length (TestHeadOfCallRouteDoesNotCall; a mapped error's 404
// shows on the GET only); Allow (405s and OPTIONS) names HEAD beside GET.
// A route without GET still answers HEAD 405 (the event streams' HEAD:
// TestHeadOfEventStreams; a publishing route's:
// TestHeadOfPublishingRouteDoesNotPublish).
func TestHeadOfGetRoute(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: "com.head.state",
				Args: []any{"$/path/id"}, Errors: map[string]int{"com.head.no_device": 404}},
			{Name: "poke", Method: "GET", Path: "/devices/{id}/poke", Realm: "realm1", Publish: "com.head.poke"},
			{Name: "set", Method: "POST", Path: "/devices/{id}/set", Realm: "realm1", Call: "com.head.state"},
		}
	})
	var calls, events atomic.Int64
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.head.state", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		if len(inv.Args) > 0 && inv.Args[0] == "none" {
			return nil, &client.Error{URI: "com.head.no_device"}
		}
		return &client.Result{Args: []any{"on"}}, nil
	})
	if _, err := s.Subscribe(context.Background(), "com.head.poke", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/devices/1/state"} {
		g, _ := e.do("GET", path, "")
		h, hb := e.do("HEAD", path, "")
		if h.StatusCode != g.StatusCode || len(hb) != 0 || h.Header.Get("Content-Type") != g.Header.Get("Content-Type") {
			t.Fatalf("HEAD %s: %d %q, %d bytes; GET: %d %q: want the GET's status and Content-Type, no body",
				path, h.StatusCode, h.Header.Get("Content-Type"), len(hb), g.StatusCode, g.Header.Get("Content-Type"))
		}
	}
	if g, _ := e.do("GET", "/devices/none/state", ""); g.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of a mapped error: %d, want 404", g.StatusCode)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls for two GETs and a HEAD, want 2 (the GETs')", n)
	}
	if r, _ := e.do("HEAD", "/devices/1/poke", ""); r.StatusCode/100 != 2 {
		t.Fatalf("HEAD of a publishing GET route: %d", r.StatusCode)
	}
	for _, path := range []string{"/devices/1/set"} {
		r, _ := e.do("HEAD", path, "")
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") == "" || strings.Contains(r.Header.Get("Allow"), "HEAD") {
			t.Fatalf("HEAD %s: %d, Allow %q; want 405 with an Allow without HEAD", path, r.StatusCode, r.Header.Get("Allow"))
		}
	}
	if r, _ := e.do("OPTIONS", "/devices/1/state", ""); r.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Fatalf("OPTIONS: Allow %q, want GET, HEAD, OPTIONS", r.Header.Get("Allow"))
	}
	if r, _ := e.do("PUT", "/devices/1/state", ""); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Fatalf("PUT: %d, Allow %q; want 405, GET, HEAD, OPTIONS", r.StatusCode, r.Header.Get("Allow"))
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want still 2", n)
	}
}
