package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadOfEventStreamSubscribesNothing: a HEAD of an event stream
// answers the GET's status and header fields from the gateway's own
// checks (the match, the realm's bridge, the credentials, the topic's
// form) and makes nothing at the router. Before, it was subscribed as
// the GET, then let go: each HEAD opened the principal's pooled stream
// session if it had none (wamp.session.on_join), made and dropped a
// subscription (wamp.subscription.on_create, on_delete; a mesh directory
// change) and, with retained=true, asked for the retained event (a
// mesh-wide gather). A streamed call route's HEAD, already made without
// the call, no longer opens a pooled session either.
func TestHeadOfEventStreamSubscribesNothing(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxStreams = 2
		o.Routes = []Route{{Name: "state", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.hn.state"}}
	})
	admin := e.dial("realm1", proto.JSON)
	var joins, creates atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.Subscribe(ctx, "wamp.session.on_join", func(*client.Event) { joins.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Subscribe(ctx, "wamp.subscription.on_create", func(ev *client.Event) {
		if d, ok := arg(ev.Args, 1).(map[string]any); ok && strings.HasPrefix(fmt.Sprint(d["uri"]), "com.hn.") {
			creates.Add(1)
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/wamp/realm1/events/com.hn.news", "/wamp/realm1/events/com.hn.news?retained=true",
		"/wamp/realm1/events/com.hn.?match=prefix"} {
		h, hb := e.do("HEAD", path, "")
		if h.StatusCode != http.StatusOK || len(hb) != 0 || h.Header.Get("Content-Type") != "text/event-stream" || h.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("HEAD %s: %d %q %q, %d bytes; want the GET's 200, text/event-stream, no-store, no body",
				path, h.StatusCode, h.Header.Get("Content-Type"), h.Header.Get("Cache-Control"), len(hb))
		}
	}
	if h, _ := e.do("HEAD", "/state", "", "Accept", "text/event-stream"); h.StatusCode != http.StatusOK || h.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /state asking for a stream: %d %q, want 200 text/event-stream", h.StatusCode, h.Header.Get("Content-Type"))
	}
	// A GET, whose join and subscription come after any of the HEADs'.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if r, _ := e.stream(sctx, "GET", "/wamp/realm1/events/com.hn.news", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("GET of the event stream: %d", r.StatusCode)
	}
	waitFor(t, "the GET's subscription", func() bool { return creates.Load() >= 1 })
	time.Sleep(100 * time.Millisecond) // meta events of the HEADs would have come before the GET's
	if n, j := creates.Load(), joins.Load(); n != 1 || j != 1 {
		t.Errorf("HEADs made %d subscriptions and opened %d sessions (the GET one of each): want none", n-1, j-1)
	}
	// The GET's own checks, answered alike without the router.
	for _, c := range []struct {
		path   string
		status int
	}{{"/wamp/realm1/events/com.hn.news?match=nonsense", 400}, {"/wamp/realm1/events/com..hn", 400},
		{"/wamp/nosuch/events/com.hn.news", 404}, {"/wamp/secure/events/com.pub.x", 401}} {
		g, _ := e.do("GET", c.path, "", "Accept", "text/event-stream")
		h, hb := e.do("HEAD", c.path, "")
		if h.StatusCode != c.status || g.StatusCode != c.status || len(hb) != 0 {
			t.Errorf("HEAD %s: %d (%d bytes), GET %d: want %d both", c.path, h.StatusCode, len(hb), g.StatusCode, c.status)
		}
	}
}

// arg is args[i], or nil.
func arg(args []any, i int) any {
	if i < len(args) {
		return args[i]
	}
	return nil
}
