package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A refresh that reaches a node which does not know the login's user (a
// rolling reload that adds the user has not reached it yet, or a node an
// operator forgot) is refused there, and the login goes on: the same
// refresh token refreshes on a node that knows the user. The refusing
// node ended the family and revoked its grant: the login was gone on
// every node, its access tokens refused, and the WAMP sessions and SSE
// streams it opened ended everywhere (OnRevoke), because one node's
// configuration lagged.
func TestRefreshOnANodeWithoutTheUser(t *testing.T) {
	store := newMemStore(time.Now)
	a := startEnv(t, func(o *Options) { o.Store = store })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now })
	b.users.remove("realm1", "bob") // B's configuration lags: no bob yet
	st, tok := a.token(url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {bobPW}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("bob's login on A: %d %v", st, tok)
	}
	rt := tok["refresh_token"].(string)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if st, body := b.token(refresh, "backend", backendSec); st != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("bob's refresh on B, which has no bob: %d %v, want 400 invalid_grant", st, body)
	}
	a.srv.syncOnce(false)
	if _, err := a.srv.VerifyAccessToken(tok["access_token"].(string)); err != nil {
		t.Errorf("bob's access token on A after B refused his refresh: %v, want valid", err)
	}
	if st, body := a.token(refresh, "backend", backendSec); st != 200 {
		t.Errorf("bob's refresh on A (which knows him) after B refused it: %d %v, want 200", st, body)
	}
}
