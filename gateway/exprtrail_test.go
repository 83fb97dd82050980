package gateway

import (
	"context"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteJSONTrailingBracketRefused: a route's JSON body and a value
// its template converts with "|json" are one JSON document, nothing after
// it but white space. Before, encoding/json's Decoder.More, which says
// false before a closing bracket, let `{"cmd":"x"}]` and `{"a":1}}`
// through as the document before it (while `{"cmd":"x"} 1` was refused),
// so a request that is not JSON was routed and called.
func TestRouteJSONTrailingBracketRefused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "body", Method: "POST", Path: "/cmd", Realm: "realm1", Call: "com.trail.cmd", Kwargs: map[string]any{"cmd": "$/body/cmd"}},
			{Name: "query", Method: "GET", Path: "/filter", Realm: "realm1", Call: "com.trail.cmd", Kwargs: map[string]any{"f": "$/query/f|json"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.trail.cmd", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	})
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/cmd", `{"cmd":"x"}`, 200},
		{"POST", "/cmd", ` {"cmd":"x"} ` + "\n", 200},
		{"POST", "/cmd", `{"cmd":"x"}]`, 400},
		{"POST", "/cmd", `{"cmd":"x"}}`, 400},
		{"POST", "/cmd", `{"cmd":"x"} ]`, 400},
		{"POST", "/cmd", `{"cmd":"x"} 1`, 400},
		{"GET", "/filter?f=%7B%22a%22%3A1%7D", "", 200},    // {"a":1}
		{"GET", "/filter?f=%7B%22a%22%3A1%7D%7D", "", 400}, // {"a":1}}
		{"GET", "/filter?f=1%5D", "", 400},                 // 1]
		{"GET", "/filter?f=1%20", "", 200},                 // "1 "
	} {
		r, body := e.do(c.method, c.path, c.body)
		if r.StatusCode != c.status {
			t.Errorf("%s %s %q: %d %s, want %d", c.method, c.path, c.body, r.StatusCode, body, c.status)
		}
	}
}
