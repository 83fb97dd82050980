package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A route's path parameters, query values and header values are strings
// of the request's bytes: a %FF in a path segment or a query, or an
// obs-text byte in a header (RFC 9110 §5.5 lets a header carry bytes
// 0x80-0xFF), is not UTF-8 text. JSON has no form for such a string, and
// the arguments built were written with U+FFFD in its place: the callee
// got another value than the client sent, and /files/%FF and /files/%FE
// became the same call. They are refused as the bridge refuses a body
// that is not UTF-8 (400 wamp.error.invalid_argument), naming the value,
// before any call or publication is made.
func TestRouteValueNotUTF8Refused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Method: "GET", Path: "/files/{name}", Realm: "realm1", Call: "com.files.get",
				Args: []any{"$/path/name", "$/query/v?", "$/headers/x-tag?"}},
			{Method: "POST", Path: "/files/{name}", Realm: "realm1", Publish: "com.files.put",
				Args: []any{"$/path/name", "$/query/v?", "$/headers/x-tag?"}, Acknowledge: true},
		}
	})
	callee := e.dial("realm1", proto.MsgPack)
	var mu sync.Mutex
	var got [][]any
	e.register(callee, "com.files.get", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		mu.Lock()
		got = append(got, inv.Args)
		mu.Unlock()
		return &client.Result{Args: inv.Args}, nil
	})
	for _, tc := range []struct{ path, hdr, want string }{
		{"/files/%FF", "", "/path/name"},
		{"/files/%FE", "", "/path/name"},
		{"/files/ok?v=%C3", "", "/query/v"},
		{"/files/ok", "a\xffb", "/headers/x-tag"},
	} {
		for _, method := range []string{"GET", "POST"} {
			var hdr []string
			if tc.hdr != "" {
				hdr = []string{"X-Tag", tc.hdr}
			}
			resp, body := e.do(method, tc.path, "", hdr...)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s (X-Tag %q): %d %s, want 400", method, tc.path, tc.hdr, resp.StatusCode, body)
				continue
			}
			p := expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
			if !strings.Contains(p.Detail, tc.want) || !strings.Contains(p.Detail, "UTF-8") {
				t.Errorf("%s %s: detail %q, want it to name %s and UTF-8", method, tc.path, p.Detail, tc.want)
			}
		}
	}
	// Text, escaped or not, still goes through as it is.
	resp, body := e.do("GET", "/files/caf%C3%A9?v=%E2%82%AC", "", "X-Tag", "plain")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /files/café: %d %s", resp.StatusCode, body)
	}
	var doc struct{ Args []string }
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Args) != 3 || doc.Args[0] != "café" || doc.Args[1] != "€" || doc.Args[2] != "plain" {
		t.Fatalf("GET /files/café: %s (%v)", body, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Errorf("the callee got %d invocations %v, want 1 (the UTF-8 one)", len(got), got)
	}
}
