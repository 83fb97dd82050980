package oauth

import (
	"net/url"
	"strings"
	"testing"
)

// A refresh that narrows the scope (RFC 6749 §6) reads it as the grants
// do (grantScope): scope tokens separated by spaces (§3.3: SP; a tab or
// another Unicode space is no separator, and a token holding one is not
// granted), each once. Before, subsetScope split with strings.Fields: a
// refresh asking "read\twrite" or "read\u00a0" was issued "read write" or
// "read" where the password grant refuses both invalid_scope, and one
// asking "write read read" got a token whose scope named read twice (up
// to the form's 16 KiB of repeats in one claim). A refused refresh leaves
// its token usable.
func TestScopeRefreshReadAsGranted(t *testing.T) {
	e := startEnv(t, nil)
	login := func() string {
		t.Helper()
		st, body := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {"read write"}}, "backend", backendSec)
		if st != 200 {
			t.Fatalf("password grant: %d %v", st, body)
		}
		return body["refresh_token"].(string)
	}
	rt := login()
	for _, sc := range []string{"read\twrite", "read\u00a0", "read\u0085write"} {
		st, body := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {sc}}, "backend", backendSec)
		wantOAuthError(t, st, body, 400, "invalid_scope")
		st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {sc}}, "backend", backendSec)
		if st != 400 || body["error"] != "invalid_scope" {
			t.Fatalf("refresh with scope %q: %d %v, want 400 invalid_scope as the password grant", sc, st, body)
		}
	}
	for _, c := range []struct{ ask, want string }{
		{"write read read", "write read"},
		{" read  read ", "read"},
		{"read", "read"},
	} {
		st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {c.ask}}, "backend", backendSec)
		if st != 200 || body["scope"] != c.want {
			t.Fatalf("refresh with scope %q: %d %v, want 200 scope %q", c.ask, st, body, c.want)
		}
		rt = body["refresh_token"].(string)
		at, err := e.srv.VerifyAccessToken(body["access_token"].(string))
		if err != nil || len(at.Scopes) != len(strings.Fields(c.want)) {
			t.Fatalf("refresh with scope %q: token scopes %v %v, want %q", c.ask, at, err, c.want)
		}
	}
}
