package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHeadPreflightGrantedAsGet: a GET route and the bridge's event
// streams answer HEAD (RFC 9110 §9.3.2; Allow names it beside GET), and
// a browser sends a page's HEAD with a credential (fetch(url, {method:
// "HEAD", headers: {Authorization: …}})) only after a CORS preflight
// naming HEAD. The preflight was not granted: a route's was answered 204
// with Allow and no Access-Control-* (no route of the path has a HEAD
// method of its own: its GET serves it), the event streams' 403 "method
// HEAD is not allowed here" (their policy named GET only), so the page's
// HEAD never left the browser. It is now granted as the GET's is, and
// Access-Control-Allow-Methods names HEAD beside GET.
func TestHeadPreflightGrantedAsGet(t *testing.T) {
	const origin = "https://app.example"
	e := newEnv(t, func(o *Options) {
		o.CORS.AllowedOrigins = []string{origin}
		o.Routes = []Route{{Name: "state", Method: "GET", Path: "/state", Realm: "realm1", Call: "com.hc.state",
			CORS: &CORS{AllowedOrigins: []string{origin}}}}
	})
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.hc.state", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"on"}}, nil
	})
	for _, path := range []string{"/state", "/wamp/realm1/events/com.hc.news"} {
		for _, m := range []string{"GET", "HEAD"} {
			r, b := e.do("OPTIONS", path, "", "Origin", origin, "Access-Control-Request-Method", m,
				"Access-Control-Request-Headers", "authorization")
			methods := ", " + r.Header.Get("Access-Control-Allow-Methods") + ","
			if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != origin ||
				!strings.Contains(methods, ", GET,") || !strings.Contains(methods, ", HEAD,") ||
				!strings.EqualFold(r.Header.Get("Access-Control-Allow-Headers"), "authorization") {
				t.Errorf("preflight of %s %s: %d, Allow-Origin %q, Allow-Methods %q, Allow-Headers %q, Allow %q %s; want 204 granting %s (GET and HEAD), authorization",
					m, path, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Methods"),
					r.Header.Get("Access-Control-Allow-Headers"), r.Header.Get("Allow"), b, origin)
			}
		}
		// The HEAD itself carries the grant, as the GET does.
		if r, _ := e.do("HEAD", path, "", "Origin", origin); r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("HEAD %s from %s: %d, Allow-Origin %q; want 200 and the grant", path, origin, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}
