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

// TestAckPublishAcceptNotJSONIs406: an acknowledged publication answers
// {"publication":id} in JSON, and with an Accept that admits no JSON
// (application/msgpack, application/json;q=0) it was published and
// answered JSON with 200 all the same, where a call is refused 406 before
// it is made. It is now refused 406 edgewamp.error.not_acceptable before
// it is published, on the bridge and on a route alike (a stream is not
// offered: text/event-stream alone is refused too); an unacknowledged
// publication, whose 202 has no body, is served whatever the Accept, and
// an Accept admitting JSON is served as before.
func TestAckPublishAcceptNotJSONIs406(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "ack", Method: "POST", Path: "/ack", Realm: "realm1", Publish: "com.pa.t", Acknowledge: true},
			{Name: "noack", Method: "POST", Path: "/noack", Realm: "realm1", Publish: "com.pa.t"},
		}
	})
	var events atomic.Int64
	sub := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, "com.pa.t", func(*client.Event) { events.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	bridgeAck := `{"args":[1],"options":{"acknowledge":true}}`
	for _, a := range []string{"application/msgpack", "application/json;q=0, application/msgpack", "text/html", "text/event-stream"} {
		for _, target := range [][2]string{{"/wamp/realm1/publish/com.pa.t", bridgeAck}, {"/ack", `{}`}} {
			r, b := e.do("POST", target[0], target[1], "Accept", a)
			if r.StatusCode != http.StatusNotAcceptable {
				t.Errorf("POST %s with Accept %q: %d %q %s, want 406", target[0], a, r.StatusCode, r.Header.Get("Content-Type"), b)
			} else {
				expectProblem(t, r, b, http.StatusNotAcceptable, URINotAcceptable)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // events of refused publications would be on their way
	if n := events.Load(); n != 0 {
		t.Errorf("%d events published for requests refused 406", n)
	}
	want := int64(0)
	for _, a := range []string{"application/msgpack", "text/html"} {
		for _, target := range [][2]string{{"/wamp/realm1/publish/com.pa.t", `{"args":[1]}`}, {"/noack", `{}`}} {
			if r, b := e.do("POST", target[0], target[1], "Accept", a); r.StatusCode != http.StatusAccepted {
				t.Errorf("unacknowledged POST %s with Accept %q: %d %s, want 202", target[0], a, r.StatusCode, b)
			}
			want++
		}
	}
	for _, a := range []string{"", "*/*", "application/*", "application/msgpack, application/json;q=0.5"} {
		var hdr []string
		if a != "" {
			hdr = []string{"Accept", a}
		}
		for _, target := range [][2]string{{"/wamp/realm1/publish/com.pa.t", bridgeAck}, {"/ack", `{}`}} {
			if r, b := e.do("POST", target[0], target[1], hdr...); r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("acknowledged POST %s with Accept %q: %d %q %s, want 200 JSON", target[0], a, r.StatusCode, r.Header.Get("Content-Type"), b)
			}
			want++
		}
	}
	waitFor(t, "the served publications' events", func() bool { return events.Load() == want })
}
