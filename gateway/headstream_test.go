package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadOfEventStreams: an event stream answers HEAD as its GET would,
// headers only (RFC 9110 §9.3.2), and a call route's stream honours the
// route's response.status. Before, the bridge's GET /wamp/{realm}/events/
// {topic} answered HEAD 405 (Allow: GET, OPTIONS); a call route's HEAD
// asking for a stream made the call; and a streamed call answered 200
// whatever the route's response.status. Now a HEAD of the events
// endpoint is checked as the GET and answered 200 without subscribing
// (TestHeadOfEventStreamSubscribesNothing) or taking a stream slot (with
// max_streams 2, ten HEADs in a row leave room for a GET); a streamed
// call route's HEAD answers the stream's status without calling.
func TestHeadOfEventStreams(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxStreams = 2
		o.Routes = []Route{
			{Name: "state", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.hs.state"},
			{Name: "make", Method: "GET", Path: "/make", Realm: "realm1", Call: "com.hs.state", Response: Response{Status: 201}},
		}
	})
	var calls atomic.Int64
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.hs.state", func(context.Context, *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{Args: []any{"on"}}, nil
	})
	for i := 0; i < 10; i++ {
		h, hb := e.do("HEAD", "/wamp/realm1/events/com.hs.news", "")
		if h.StatusCode != http.StatusOK || len(hb) != 0 || h.Header.Get("Content-Type") != "text/event-stream" || h.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("HEAD of an event stream (%d): %d %q %q, %d bytes; want the GET's 200, text/event-stream, no-store, no body",
				i, h.StatusCode, h.Header.Get("Content-Type"), h.Header.Get("Cache-Control"), len(hb))
			break
		}
	}
	if h, _ := e.do("HEAD", "/wamp/realm1/events/com.hs.news?match=nonsense", ""); h.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD of an event stream with a bad match: %d, want the GET's 400", h.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, _ := e.stream(ctx, "GET", "/wamp/realm1/events/com.hs.news", ""); r.StatusCode != http.StatusOK {
		t.Errorf("GET of an event stream after ten HEADs: %d, want 200 (the HEADs let their slots go)", r.StatusCode)
	}
	cancel()
	for _, c := range []struct {
		path   string
		status int
	}{{"/state", 200}, {"/make", 201}} {
		h, hb := e.do("HEAD", c.path, "", "Accept", "text/event-stream")
		if h.StatusCode != c.status || len(hb) != 0 || h.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD %s asking for a stream: %d %q, %d bytes; want %d text/event-stream, no body", c.path, h.StatusCode, h.Header.Get("Content-Type"), len(hb), c.status)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls for two HEADs asking for a stream, want 0", n)
	}
	g, gb := e.do("GET", "/make", "", "Accept", "text/event-stream")
	if g.StatusCode != 201 || g.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("GET /make (response.status 201) streamed: %d %q %.80s, want 201", g.StatusCode, g.Header.Get("Content-Type"), gb)
	}
}
