package gateway

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadOfCallRouteDoesNotCall: a HEAD of a GET call route answered
// as a plain JSON request made the call (RFC 9110 §9.3.2 makes HEAD a
// GET without its content, not a second action): a monitor's or link
// checker's HEAD ran the procedure, side effects and all. It is now
// checked as its GET up to the call (its 400 for a missing value, 401,
// 406) and answers the status and header fields of a result (200 or the
// route's response.status, application/json, no-store, no
// Content-Length, which is known only once called), without calling, as
// a publishing route's HEAD does; an error the call would give (a mapped
// 404, a 502) shows on the GET only.
func TestHeadOfCallRouteDoesNotCall(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: "com.hc.state",
				Args: []any{"$/path/id"}, Errors: map[string]int{"com.hc.no_device": 404}},
			{Name: "make", Method: "GET", Path: "/make", Realm: "realm1", Call: "com.hc.state", Args: []any{"$/query/v"},
				Response: Response{Status: 201, Body: "$/args/0"}},
			{Name: "secure", Method: "GET", Path: "/secure", Realm: "secure", Call: "com.ok.state", Auth: Auth{Type: "bearer"}},
		}
	})
	var calls atomic.Int64
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.hc.state", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		if len(inv.Args) > 0 && inv.Args[0] == "none" {
			return nil, &client.Error{URI: "com.hc.no_device"}
		}
		return &client.Result{Args: []any{"on"}}, nil
	})
	for _, c := range []struct {
		path   string
		status int
	}{{"/devices/1/state", 200}, {"/devices/none/state", 200}, {"/make?v=1", 201}} {
		h, hb := e.do("HEAD", c.path, "")
		if h.StatusCode != c.status || len(hb) != 0 || h.Header.Get("Content-Type") != "application/json" ||
			h.Header.Get("Cache-Control") != "no-store" || h.Header.Get("Content-Length") != "" {
			t.Errorf("HEAD %s: %d %q %q, Content-Length %q, %d bytes; want %d application/json, no-store, no length, no body",
				c.path, h.StatusCode, h.Header.Get("Content-Type"), h.Header.Get("Cache-Control"), h.Header.Get("Content-Length"), len(hb), c.status)
		}
	}
	for _, c := range []struct {
		path, accept string
		status       int
	}{{"/make", "", 400}, {"/devices/1/state", "text/plain", 406}, {"/secure", "", 401}} {
		if h, _ := e.do("HEAD", c.path, "", "Accept", c.accept); h.StatusCode != c.status {
			t.Errorf("HEAD %s (Accept %q): %d, want the GET's %d", c.path, c.accept, h.StatusCode, c.status)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d calls for 6 HEADs, want 0", n)
	}
	if g, _ := e.do("GET", "/devices/none/state", ""); g.StatusCode != 404 {
		t.Errorf("GET /devices/none/state: %d, want the mapped 404", g.StatusCode)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for one GET", n)
	}
}
