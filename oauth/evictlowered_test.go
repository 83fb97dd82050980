package oauth

import (
	"net/url"
	"testing"
)

// A reload that lowers max_refresh_tokens by more than the bound on the
// revocation entries a user's logins may add (max(max_refresh_tokens,
// 32)) leaves a user more live logins than one login may end: 100 with
// the bound 100, lowered to 30, and the next login had 39 to end (the
// index read is cut to 2 × 30 + 8 first), each with live access tokens.
// That login was refused 429, and so was every later one for as long as
// those logins kept refreshing (devices in use: measured over four
// rounds of 4 min, all refused). A login now ends as many as the bound
// has room for, the oldest first, and leaves the others listed for the
// next logins.
func TestLoweredMaxRefreshTokensLetsLoginsIn(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Realms[0].MaxRefreshTokens = 100 })
	login := func() (int, map[string]any) {
		return e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
	}
	for i := range 100 {
		if st, body := login(); st != 200 {
			t.Fatalf("login %d of alice: %d %v", i+1, st, body)
		}
	}
	realms := testRealms(t)
	realms[0].MaxRefreshTokens = 30
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	st, body := login()
	if st != 200 {
		t.Fatalf("a login after max_refresh_tokens was lowered from 100 to 30: %d %v, want 200", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatalf("its access token: %v", err)
	}
	es, err := e.store.List(e.ctx(), "rv.")
	if err != nil {
		t.Fatal(err)
	}
	if bound := max(30, maxEndedLogins); len(es) > bound {
		t.Fatalf("the login stored %d revocation entries, want at most %d", len(es), bound)
	}
}
