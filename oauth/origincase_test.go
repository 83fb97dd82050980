package oauth

import (
	"net/url"
	"strings"
	"testing"
)

// A browser sends Origin as the origin's ASCII serialization: scheme and
// host in lower case, the scheme's default port left out (RFC 6454 §6.2).
// A redirect URI registered as "https://Dash.Example:443/cb" (valid, and
// matched exactly as registered) made the origin "https://Dash.Example:443",
// which no browser sends: the app's token request (the code exchange, every
// refresh) was refused 403 "requests from this origin are not accepted",
// without CORS headers, so the dashboard could not sign in at all. The
// issuer's own origin was compared the same way.
func TestRegisteredOriginMatchesTheBrowsersSerialization(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.Realms[0].Clients = append(o.Realms[0].Clients,
			Client{ID: "spa", Public: true, RedirectURIs: []string{"https://Dash.Example:443/cb"}, Grants: []string{GrantAuthorizationCode, GrantRefreshToken}},
			Client{ID: "spa6", Public: true, RedirectURIs: []string{"HTTP://[::1]:80/cb"}, Grants: []string{GrantAuthorizationCode}})
	})
	for _, c := range []struct{ client, origin string }{
		{"spa", "https://dash.example"},
		{"spa6", "http://[::1]"},
	} {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {c.client}, "code": {"x"}, "code_verifier": {strings.Repeat("v", 43)}}
		resp := e.postFrom(t, "/oauth/token", form.Encode(), c.origin)
		// 400 invalid_grant (the code is made up): the request was served.
		if resp.StatusCode != 400 || resp.Header.Get("Access-Control-Allow-Origin") != c.origin {
			t.Errorf("%s's token request from %s: %d, Access-Control-Allow-Origin %q; want 400 and the origin allowed",
				c.client, c.origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// Another origin is still refused.
	if resp := e.postFrom(t, "/oauth/token", "grant_type=client_credentials", "https://dash.example:8443"); resp.StatusCode != 403 {
		t.Fatalf("an unregistered origin: %d, want 403", resp.StatusCode)
	}
	// The issuer's own origin, written with capitals: a page of the
	// issuer's origin is served.
	e2 := startEnv(t, func(o *Options) { o.Issuer = strings.Replace(o.Issuer, "127.0.0.1", "LocalHost", 1) })
	own := strings.Replace(e2.url, "127.0.0.1", "localhost", 1)
	if resp := e2.postFrom(t, "/oauth/token", "grant_type=client_credentials&client_id=cli", own); resp.StatusCode == 403 {
		t.Fatalf("a request from the issuer's own origin %s (issuer written with capitals): 403", own)
	}
}
