package oauth

import (
	"net/url"
	"testing"
)

// TestTooLongLoginEndsNoOtherLogin: a login whose access token would be
// too long to verify is refused (TestNoTokenIssuedThatTheServerRefuses),
// and the family it made was deleted; but the family was made, and
// indexed among the user's logins, before the token was signed, and at
// the bound (realms[].oauth.max_refresh_tokens) indexing it ended the
// user's oldest live login. Each refused attempt ended one of the user's
// other devices. Now the token is signed first, and a login refused for
// it touches nothing.
func TestTooLongLoginEndsNoOtherLogin(t *testing.T) {
	scopes := longScopes()
	e := startEnv(t, func(o *Options) {
		o.Realms[0].Clients[0].Scopes = scopes
		o.Realms[0].MaxRefreshTokens = 2
	})
	login := func(scope string) (int, map[string]any) {
		f := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return e.token(f, "backend", backendSec)
	}
	var rts []string
	for i := range 2 {
		st, body := login(scopes[i])
		if st != 200 {
			t.Fatalf("login %d: %d %v", i, st, body)
		}
		rts = append(rts, body["refresh_token"].(string))
	}
	for range 2 {
		if st, body := login(""); st != 400 || body["error"] != "invalid_scope" {
			t.Fatalf("a login whose token would be too long: %d %v", st, body)
		}
	}
	for i, rt := range rts {
		st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "backend", backendSec)
		if st != 200 {
			t.Errorf("login %d after the refused ones: %d %v, want it still live", i, st, body)
		}
	}
}
