package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestAcceptEventStreamWeightAndCase: a call is streamed when its Accept
// admits text/event-stream, judged as acceptsJSON judges JSON: a media
// range of weight 0 (text/event-stream;q=0, "not acceptable", RFC 9110
// §12.4.2) was taken as a request for a stream and answered one, and a
// name in other case (Text/Event-Stream: media types are
// case-insensitive) was not, the call refused 406. And acceptsSSE, which
// the event loops' lane runs on every bridge call, allocated once per
// call with an Accept header (strings.Split): a browser's
// "application/json, text/plain, */*" cost an allocation on the hot path.
func TestAcceptEventStreamWeightAndCase(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "get", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.ase.echo"}}
	})
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.ase.echo", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{1}}, nil
	})
	for _, c := range []struct{ accept, ctype string }{
		{"text/event-stream;q=0, application/json", "application/json"},
		{"text/event-stream; q=0.0, */*", "application/json"},
		{"Text/Event-Stream", "text/event-stream"},
		{"application/json;q=0.5, TEXT/EVENT-STREAM", "text/event-stream"},
		{"text/event-stream", "text/event-stream"},
	} {
		for _, target := range [][2]string{{"POST", "/wamp/realm1/call/com.ase.echo"}, {"GET", "/state"}} {
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
	r.Header.Set("Accept", "application/json, text/plain, */*")
	if n := testing.AllocsPerRun(100, func() { acceptsSSE(r) }); n != 0 {
		t.Errorf("acceptsSSE of a browser's Accept: %v allocations, want 0", n)
	}
}
