package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRepeatedListHeaderJoined: a header whose value is a list (RFC 9110
// §5.3), given in several lines, is one value to a route, its lines
// joined with commas, as proxies add their own line: Forwarded (RFC 7239
// §4), Via, HAProxy's X-Forwarded-For, an Accept a client gave twice that
// Go's httputil.ReverseProxy passes on as it is. Since 4bcce29 a route
// reading one answered such requests 400 "/headers/forwarded is given
// twice"; a header that is no list given twice still is.
func TestRepeatedListHeaderJoined(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "hdr", Method: "GET", Path: "/hdr", Realm: "realm1", Call: "com.hdr",
			Kwargs: map[string]any{"fwd": "$/headers/forwarded?", "via": "$/headers/via?", "xff": "$/headers/x-forwarded-for?",
				"accept": "$/headers/accept?", "cookie": "$/headers/cookie?", "trace": "$/headers/x-trace?"}}}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.hdr", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: inv.Kwargs}, nil
	})
	u, err := url.Parse(e.base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	defer proxy.Close()
	get := func(base string, hdr [][2]string) (int, map[string]any, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", base+"/hdr", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hdr {
			req.Header.Add(h[0], h[1])
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var doc struct{ Kwargs map[string]any }
		json.Unmarshal(b, &doc)
		return resp.StatusCode, doc.Kwargs, string(b)
	}
	cases := []struct {
		key  string
		hdr  [][2]string
		want string
	}{
		{"fwd", [][2]string{{"Forwarded", "for=192.0.2.1"}, {"Forwarded", "for=192.0.2.2;proto=https"}}, "for=192.0.2.1, for=192.0.2.2;proto=https"},
		{"via", [][2]string{{"Via", "1.1 cdn"}, {"Via", "1.1 lb"}}, "1.1 cdn, 1.1 lb"},
		{"xff", [][2]string{{"X-Forwarded-For", "192.0.2.1"}, {"X-Forwarded-For", "192.0.2.2"}}, "192.0.2.1, 192.0.2.2"},
		{"accept", [][2]string{{"Accept", "application/json"}, {"Accept", "*/*"}}, "application/json, */*"},
		{"cookie", [][2]string{{"Cookie", "a=1"}, {"Cookie", "b=2"}}, "a=1; b=2"},
	}
	for _, tc := range cases {
		for _, base := range []string{proxy.URL, e.base} {
			status, kw, b := get(base, tc.hdr)
			if status != http.StatusOK {
				t.Fatalf("%s given twice (%s): %d %s", tc.hdr[0][0], base, status, b)
			}
			want := tc.want
			if base == proxy.URL && tc.key == "xff" {
				want += ", 127.0.0.1" // the proxy's own
			}
			if kw[tc.key] != want {
				t.Fatalf("%s given twice (%s): the callee got %q, want %q", tc.hdr[0][0], base, kw[tc.key], want)
			}
		}
	}
	// A header that is no list, given twice, is still refused.
	for _, base := range []string{proxy.URL, e.base} {
		if status, _, b := get(base, [][2]string{{"X-Trace", "a"}, {"X-Trace", "b"}}); status != http.StatusBadRequest {
			t.Fatalf("X-Trace given twice (%s): %d %s", base, status, b)
		}
	}
}
