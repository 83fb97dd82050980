package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestLoopbackRedirectAnyPort: RFC 8252 §7.3, "The authorization server
// MUST allow any port to be specified at the time of the request for
// loopback IP redirect URIs": a native app (a CLI, a desktop tool) listens
// on a port the system picks at each sign-in and sends
// http://127.0.0.1:<port>/callback. Matched exactly as registered, every
// such request was refused on the page ("redirect_uri mismatch"), so a
// native app following the RFC could not sign in at all. Now a loopback
// IP redirect URI matches with any port (path and query still exactly);
// the code is bound to the URI with the port the request named, the
// page's form-action names that port, and anything else (another path,
// another loopback address, a host name, https to another port) is
// still refused.
func TestLoopbackRedirectAnyPort(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.Realms[0].Clients = append(o.Realms[0].Clients,
			Client{ID: "native", Name: "Plant CLI", Public: true, RedirectURIs: []string{"http://127.0.0.1/callback", "http://[::1]:8400/cb"},
				Grants: []string{GrantAuthorizationCode, GrantRefreshToken}, Scopes: []string{"read"}},
			Client{ID: "web", Name: "Web", Public: true, RedirectURIs: []string{"https://dash.example/cb", "http://localhost/cb"},
				Grants: []string{GrantAuthorizationCode}, Scopes: []string{"read"}})
	})
	cfg := func(id, redirect string) *oauth2.Config {
		c := e.config(id, "", "read")
		c.RedirectURL = redirect
		return c
	}
	for _, ru := range []string{"http://127.0.0.1:53127/callback", "http://127.0.0.1:80/callback", "http://127.0.0.1/callback", "http://[::1]:61000/cb"} {
		c := cfg("native", ru)
		verifier := oauth2.GenerateVerifier()
		authURL := c.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
		b := newBrowser(t)
		resp, page := b.get(authURL)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: authorization page %d: %s", ru, resp.StatusCode, page)
			continue
		}
		u, _ := url.Parse(ru)
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+urlOrigin(u)) {
			t.Errorf("%s: CSP %q does not name the redirect's origin", ru, csp)
		}
		f := formFields(page)
		f.Set("username", "bob")
		f.Set("password", bobPW)
		f.Set("action", "approve")
		resp, page = b.postForm(e.url+"/oauth/authorize", f)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, ru+"?") {
			t.Errorf("%s: approval %d to %q: %s", ru, resp.StatusCode, loc, page)
			continue
		}
		lu, _ := url.Parse(loc)
		tok, err := c.Exchange(e.ctx(), lu.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Errorf("%s: exchange: %v", ru, err)
			continue
		}
		if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("%s: %v", ru, err)
		}
	}
	// The code is bound to the port the request named.
	c := cfg("native", "http://127.0.0.1:53127/callback")
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t)
	resp, page := b.get(c.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if resp.StatusCode == http.StatusOK {
		f := formFields(page)
		f.Set("username", "bob")
		f.Set("password", bobPW)
		f.Set("action", "approve")
		resp, _ = b.postForm(e.url+"/oauth/authorize", f)
		lu, _ := url.Parse(resp.Header.Get("Location"))
		c.RedirectURL = "http://127.0.0.1:53128/callback"
		if _, err := c.Exchange(e.ctx(), lu.Query().Get("code"), oauth2.VerifierOption(verifier)); retrieveErr(err) != "invalid_grant" {
			t.Errorf("exchange with another port: %v, want invalid_grant", err)
		}
	}
	for _, k := range []struct{ id, ru string }{
		{"native", "http://127.0.0.1:53127/other"},
		{"native", "http://127.0.0.1:53127/callback?x=1"},
		{"native", "http://127.0.0.2:53127/callback"},
		{"native", "http://[::1]:61000/callback"},
		{"native", "http://u@127.0.0.1:53127/callback"},
		{"native", "https://127.0.0.1:53127/callback"},
		{"web", "https://dash.example:8443/cb"},
		{"web", "http://localhost:5000/cb"},
	} {
		resp, page := newBrowser(t).get(cfg(k.id, k.ru).AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusSeeOther || !strings.Contains(page, "redirect_uri mismatch") {
			t.Errorf("%s %s: %d %s, want the page's redirect_uri mismatch", k.id, k.ru, resp.StatusCode, page)
		}
	}
}
