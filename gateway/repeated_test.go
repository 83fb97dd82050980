package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRepeatedParameterRefused: a query parameter or header the gateway
// reads once, given twice, is refused 400 naming it, whatever the
// values. Before, the gateway took the first (url.Values.Get,
// Header.Get, a route's pointer), where a proxy or filter in front of it
// reading the last judged another request: two X-API-Key headers were
// served as the first key, an event stream's match=exact&match=prefix
// followed one topic, a route's ?id=1&id=2 called with 1.
func TestRepeatedParameterRefused(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{{Name: "k", Key: "repeat-key-0123456789", Realm: "realm1", AuthID: "svc", Role: "anonymous"}}
		o.Routes = []Route{{Name: "dev", Method: "GET", Path: "/dev", Realm: "realm1", Call: "com.repeat",
			Kwargs: map[string]any{"id": "$/query/id", "trace": "$/headers/x-trace?"}}}
	})
	var calls atomic.Int64
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.repeat", func(context.Context, *client.Invocation) (*client.Result, error) {
		calls.Add(1)
		return &client.Result{}, nil
	})
	cases := []struct {
		name, method, path, body string
		hdr                      [][2]string
		want                     string // in the detail
	}{
		{"API key", "POST", "/wamp/realm1/call/com.repeat", `{}`,
			[][2]string{{"X-API-Key", "repeat-key-0123456789"}, {"X-API-Key", "another"}}, "X-Api-Key"},
		{"Authorization", "POST", "/wamp/realm1/call/com.repeat", `{}`,
			[][2]string{{"Authorization", "Basic eDp5"}, {"Authorization", "Bearer x.y.z"}}, "Authorization"},
		{"Content-Type", "POST", "/wamp/realm1/call/com.repeat", `{}`,
			[][2]string{{"Content-Type", "application/json"}, {"Content-Type", "text/plain"}}, "Content-Type"},
		{"match", "GET", "/wamp/realm1/events/com.repeat?match=exact&match=prefix", "", nil, `"match"`},
		{"retained", "GET", "/wamp/realm1/events/com.repeat?retained=true&retained=false", "", nil, `"retained"`},
		{"access_token", "GET", "/wamp/realm1/events/com.repeat?access_token=a&access_token=b", "", nil, `"access_token"`},
		{"Last-Event-ID", "GET", "/wamp/realm1/events/com.repeat", "",
			[][2]string{{"Last-Event-ID", "1"}, {"Last-Event-ID", "2"}}, "Last-Event-Id"},
		{"route query", "GET", "/dev?id=1&id=2", "", nil, "/query/id"},
		{"route header", "GET", "/dev?id=1", "", [][2]string{{"X-Trace", "a"}, {"x-trace", "b"}}, "/headers/x-trace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, tc.method, e.base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" && (len(tc.hdr) == 0 || tc.hdr[0][0] != "Content-Type") {
				req.Header.Set("Content-Type", "application/json")
			}
			for _, h := range tc.hdr {
				req.Header[http.CanonicalHeaderKey(h[0])] = append(req.Header[http.CanonicalHeaderKey(h[0])], h[1])
			}
			before := calls.Load()
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400: the repeated value was taken (%d calls)", resp.StatusCode, resp.Header.Get("Content-Type"), calls.Load()-before)
			}
			b, _ := io.ReadAll(resp.Body)
			if p := expectProblem(t, resp, b, http.StatusBadRequest, proto.URIInvalidArgument); !strings.Contains(p.Detail, tc.want) {
				t.Fatalf("detail %q does not name %s", p.Detail, tc.want)
			}
			if n := calls.Load() - before; n != 0 {
				t.Fatalf("%d calls made", n)
			}
		})
	}
	// A parameter the route does not read may repeat.
	if r, b := e.do("GET", "/dev?id=1&other=1&other=2", ""); r.StatusCode != 200 {
		t.Fatalf("a repeated parameter the route does not read: %d %s", r.StatusCode, b)
	}
}
