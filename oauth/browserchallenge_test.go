package oauth

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A browser's script that fails client authentication without the
// Authorization header gets no Basic challenge. RFC 6749 §5.2 requires
// 401 and WWW-Authenticate only "if the client attempted to authenticate
// via the Authorization request header field"; otherwise 401 is a MAY,
// and a 401 must carry a challenge (RFC 9110 §15.5.2). A Basic challenge
// answering a page's fetch (one the browser does not taint as CORS: a page
// of the issuer's own origin) makes the browser ask the person for a user
// name and password (Fetch, HTTP-network-or-cache fetch, the 401 step),
// which is not theirs to give. Since 772f106 every 401 carried it, to the
// browser's requests too. Such a request (Origin, no Authorization) gets
// 400 invalid_client, RFC 6749's default status, without a challenge;
// HTTP Basic and requests without Origin (programs) keep 401 and Basic.
func TestBrowserClientFailureDrawsNoLoginPrompt(t *testing.T) {
	e := startEnv(t, nil)
	origin := e.url // the issuer's own origin: a same-origin fetch
	for _, c := range []struct {
		name, path, body, origin, basic string
		want                            int
		challenge                       bool
	}{
		{"form secret, browser", "/oauth/token", "grant_type=client_credentials&client_id=backend&client_secret=wrong", origin, "", 400, false},
		{"unknown client, browser", "/oauth/token", "grant_type=client_credentials&client_id=nosuch&client_secret=x", origin, "", 400, false},
		{"no client, browser", "/oauth/token", "grant_type=client_credentials", origin, "", 400, false},
		{"public client at introspection, browser", "/oauth/introspect", "token=x&client_id=device", origin, "", 400, false},
		{"revocation, browser", "/oauth/revoke", "token=x&client_id=backend&client_secret=wrong", "http://127.0.0.1:9", "", 400, false},
		{"HTTP Basic, browser", "/oauth/token", "grant_type=client_credentials", origin, "wrong", 401, true},
		{"form secret, program", "/oauth/token", "grant_type=client_credentials&client_id=backend&client_secret=wrong", "", "", 401, true},
		{"no client, program", "/oauth/token", "grant_type=client_credentials", "", "", 401, true},
	} {
		e.fresh() // a clean count of failures per case
		req, _ := http.NewRequest("POST", e.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.basic != "" {
			req.SetBasicAuth("backend", c.basic)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body map[string]any
		json.Unmarshal(b, &body)
		wa := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != c.want || body["error"] != "invalid_client" || (wa != "") != c.challenge {
			t.Errorf("%s: %d %s, WWW-Authenticate %q; want %d invalid_client, a challenge %v", c.name, resp.StatusCode, b, wa, c.want, c.challenge)
		}
	}
}
