package gateway

import (
	"net/http"
	"testing"
)

// TestMount: handlers cmd mounts (the OAuth2 server's) are served on the
// gateway's listener, within its limits and metrics.
func TestMount(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Mount = map[string]http.Handler{
			"/oauth/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"path":"` + r.URL.Path + `"}`))
			}),
			"GET /.well-known/jwks.json": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"keys":[]}`))
			}),
		}
	})
	r, body := e.do("POST", "/oauth/token", "")
	if r.StatusCode != 200 || string(body) != `{"path":"/oauth/token"}` {
		t.Fatalf("mounted /oauth/: %d %s", r.StatusCode, body)
	}
	r, body = e.do("GET", "/.well-known/jwks.json", "")
	if r.StatusCode != 200 || string(body) != `{"keys":[]}` {
		t.Fatalf("mounted jwks: %d %s", r.StatusCode, body)
	}
	fams := e.scrape()
	if v := value(fams, "edgewamp_gateway_requests_total", "route", "mount:/oauth/", "code", "200"); v != 1 {
		t.Fatalf("mounted requests counted %v", v)
	}
}
