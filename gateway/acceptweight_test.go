package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestAcceptEventStreamByWeight: a call answers in the media type its
// Accept weighs highest (RFC 9110 §12.5.1: each type's weight is that of
// the most specific range matching it). acceptsSSE honoured a weight of 0
// only: "application/json, text/event-stream;q=0.1", which prefers JSON,
// was streamed. Equal weights still stream (as before).
func TestAcceptEventStreamByWeight(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "get", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.asw.echo"}}
	})
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.asw.echo", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{1}}, nil
	})
	const js, sse = "application/json", "text/event-stream"
	for _, c := range []struct{ accept, ctype string }{
		{"application/json, text/event-stream;q=0.1", js},
		{"text/event-stream;q=0.5, application/json;q=0.9", js},
		{"*/*;q=0.2, text/event-stream;q=0.1", js},
		{"application/*;q=0.3, text/event-stream;q=0.25", js},
		{"text/event-stream;q=0.999, application/json", js},
		{"application/json;q=0.1, text/event-stream;q=0.2", sse},
		{"application/json;q=0.1, */*, text/event-stream;q=0.2", sse},
		{"text/event-stream;q=0.001, application/json;q=0", sse},
		{"text/event-stream;q=0.0000, application/json;q=0.01", js},
		{"application/json, text/event-stream", sse},
		{"text/event-stream;q=1.0, application/json;q=1", sse},
		{"text/event-stream", sse},
	} {
		for _, target := range [][2]string{{"POST", "/wamp/realm1/call/com.asw.echo"}, {"GET", "/state"}} {
			body := ""
			if target[0] == "POST" {
				body = `{"args":[1]}`
			}
			r, b := e.do(target[0], target[1], body, "Accept", c.accept)
			if r.StatusCode != 200 || r.Header.Get("Content-Type") != c.ctype {
				t.Errorf("%s %s with Accept %q: %d %q %.80s, want 200 %s", target[0], target[1], c.accept, r.StatusCode, r.Header.Get("Content-Type"), b, c.ctype)
			}
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/wamp/realm1/call/x", nil)
	r.Header.Set("Accept", "application/json;q=0.9, text/event-stream;q=0.5, */*;q=0.1")
	if n := testing.AllocsPerRun(100, func() { acceptsSSE(r) }); n != 0 {
		t.Errorf("acceptsSSE with weights: %v allocations, want 0", n)
	}
}
