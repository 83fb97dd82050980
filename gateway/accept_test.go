package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestCallAcceptNotJSONIs406: a call's answer is JSON (or an event stream
// with Accept: text/event-stream), and an Accept that admits neither
// (application/msgpack, application/json;q=0) was answered JSON with 200,
// a body the client had said it could not read, after making the call.
// It is now 406 edgewamp.error.not_acceptable, before the call, on the
// bridge and on a route alike; no Accept, */*, application/*, or a list
// naming JSON anywhere with a weight above 0, is served as before.
func TestCallAcceptNotJSONIs406(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "get", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.accept.echo"}}
	})
	var calls atomic.Int64
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.accept.echo", func(context.Context, *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{Args: []any{1}}, nil
	})
	for _, a := range []string{"application/msgpack", "application/json;q=0, application/msgpack", "text/html", "application/cbor, application/json; q=0.000"} {
		for _, target := range [][2]string{{"POST", "/wamp/realm1/call/com.accept.echo"}, {"GET", "/state"}} {
			body := ""
			if target[0] == "POST" {
				body = `{"args":[1]}`
			}
			r, b := e.do(target[0], target[1], body, "Accept", a)
			if r.StatusCode != http.StatusNotAcceptable {
				t.Errorf("%s %s with Accept %q: %d %q %s, want 406", target[0], target[1], a, r.StatusCode, r.Header.Get("Content-Type"), b)
			} else {
				expectProblem(t, r, b, http.StatusNotAcceptable, URINotAcceptable)
			}
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls made for requests refused 406", n)
	}
	for _, a := range []string{"", "*/*", "application/*", "application/msgpack, application/json;q=0.5", "text/html,application/xhtml+xml,*/*;q=0.8", "APPLICATION/JSON"} {
		var hdr []string
		if a != "" {
			hdr = []string{"Accept", a}
		}
		if r, b := e.do("POST", "/wamp/realm1/call/com.accept.echo", `{"args":[1]}`, hdr...); r.StatusCode != 200 {
			t.Errorf("Accept %q: %d %s, want 200", a, r.StatusCode, b)
		}
		if r, b := e.do("GET", "/state", "", hdr...); r.StatusCode != 200 {
			t.Errorf("route with Accept %q: %d %s, want 200", a, r.StatusCode, b)
		}
	}
}
