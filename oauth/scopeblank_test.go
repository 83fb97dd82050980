package oauth

import (
	"net/url"
	"slices"
	"testing"
)

// A scope parameter of spaces only names no scope: RFC 6749 §3.3's
// grammar (scope = scope-token *( SP scope-token ), scope-token =
// 1*NQCHAR) needs at least one token. It is refused invalid_scope at the
// token endpoint (password, client_credentials, refresh_token) and at the
// device authorization endpoint; an absent or empty scope (RFC 6749 §3.1:
// a parameter without a value is as if omitted) still grants every scope
// the client may have, and a refused refresh does not use its token.
// Before, " " issued a token with no scope at all (and a refresh with it
// narrowed the token to nothing).
func TestScopeBlankRefused(t *testing.T) {
	e := startEnv(t, nil)
	for _, sc := range []string{" ", "   "} {
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {sc}}, "backend", backendSec)
		wantOAuthError(t, st, body, 400, "invalid_scope")
		st, body = e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {sc}}, "backend", backendSec)
		wantOAuthError(t, st, body, 400, "invalid_scope")
	}
	st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}, "scope": {" "}}, "", "")
	wantOAuthError(t, st, body, 400, "invalid_scope")

	// Absent or empty: every scope of the client.
	for _, form := range []url.Values{
		{"grant_type": {"client_credentials"}},
		{"grant_type": {"client_credentials"}, "scope": {""}},
	} {
		st, body := e.token(form, "backend", backendSec)
		if st != 200 {
			t.Fatalf("%v: %d %v", form, st, body)
		}
		c, err := e.srv.VerifyAccessToken(body["access_token"].(string))
		if err != nil || !slices.Equal(c.Scopes, []string{"read", "write"}) {
			t.Fatalf("%v: scopes %v %v, want read write", form, c, err)
		}
	}

	// A refresh asking " " is refused and does not use the token.
	st, body = e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {"read"}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("password grant: %d %v", st, body)
	}
	rt := body["refresh_token"].(string)
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {" "}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "invalid_scope")
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "backend", backendSec)
	if st != 200 || body["scope"] != "read" {
		t.Fatalf("refresh after the refused one: %d %v, want 200 scope read", st, body)
	}
}
