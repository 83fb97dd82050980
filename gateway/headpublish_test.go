package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadOfPublishingRouteDoesNotPublish: a HEAD of a GET route that
// publishes was that GET, publication and all (RFC 9110 §9.3.2 makes
// HEAD a GET without its content, not a second action): a monitor's or
// link checker's HEAD published an event. It now answers what the GET
// answers up to the publication (its 400 for a missing value, 401, 406)
// and then the status of a publication accepted (202, the route's
// response.status, or an acknowledged one's 200 JSON), without
// publishing.
func TestHeadOfPublishingRouteDoesNotPublish(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "poke", Method: "GET", Path: "/poke", Realm: "realm1", Publish: "com.hp.poke", Args: []any{"$/query/v"}},
			{Name: "ping", Method: "GET", Path: "/ping", Realm: "realm1", Publish: "com.hp.poke", Response: Response{Status: 204}},
			{Name: "acked", Method: "GET", Path: "/acked", Realm: "realm1", Publish: "com.hp.poke", Acknowledge: true},
		}
	})
	var events atomic.Int64
	s := e.dial("realm1", proto.JSON)
	if _, err := s.Subscribe(context.Background(), "com.hp.poke", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	gets := int64(0)
	for _, path := range []string{"/poke?v=1", "/ping", "/acked"} {
		g, _ := e.do("GET", path, "")
		gets++
		h, hb := e.do("HEAD", path, "")
		if h.StatusCode != g.StatusCode || len(hb) != 0 || h.Header.Get("Content-Type") != g.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q, %d bytes; GET: %d %q: want the GET's status and Content-Type, no body",
				path, h.StatusCode, h.Header.Get("Content-Type"), len(hb), g.StatusCode, g.Header.Get("Content-Type"))
		}
		if path != "/acked" && h.Header.Get("Content-Length") != g.Header.Get("Content-Length") {
			t.Errorf("HEAD %s: Content-Length %q, GET's %q", path, h.Header.Get("Content-Length"), g.Header.Get("Content-Length"))
		}
		if g.StatusCode/100 != 2 {
			t.Errorf("GET %s: %d", path, g.StatusCode)
		}
	}
	if h, _ := e.do("HEAD", "/poke", ""); h.StatusCode != http.StatusBadRequest {
		t.Errorf("HEAD /poke without its query value: %d, want the GET's 400", h.StatusCode)
	}
	if h, _ := e.do("HEAD", "/acked", "", "Accept", "text/plain"); h.StatusCode != http.StatusNotAcceptable {
		t.Errorf("HEAD /acked with Accept text/plain: %d, want the GET's 406", h.StatusCode)
	}
	// One more GET: publications of the gateway's pooled session reach
	// the subscriber in order, so once its event is in, any of the
	// HEADs' would be too.
	e.do("GET", "/ping", "")
	gets++
	waitFor(t, "the GETs' events", func() bool { return events.Load() >= gets })
	if n := events.Load(); n != gets {
		t.Fatalf("%d events for %d GETs and 5 HEADs: the HEADs published", n, gets)
	}
}
