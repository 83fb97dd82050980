package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A login revoked on a node that gives the realm's access tokens a
// shorter lifetime than the node that issued them (a rolling reload that
// lengthens access_token_lifetime has not reached it yet) stays revoked
// until its access tokens expire. The revocation lived as long as the
// revoking node's lifetime said (5 min here, plus the skew): once it
// expired, the 60-minute access token of the revoked login verified
// again, on every node.
func TestGrantRevocationOutlivesItsTokensOnAShorterLifetimeNode(t *testing.T) {
	store := newMemStore(time.Now)
	a := startEnv(t, func(o *Options) { o.Store = store; o.Realms[0].AccessTokenLifetime = time.Hour })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now }) // 5 min
	for _, n := range []*testEnv{a, b} {
		n.srv.Close() // no background sync: the test runs each node's rounds
	}
	st, tok := a.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("login on A: %d %v", st, tok)
	}
	at := tok["access_token"].(string)
	if st, body := b.post("/oauth/revoke", url.Values{"token": {tok["refresh_token"].(string)}}, "backend", backendSec); st != 200 {
		t.Fatalf("logout on B: %d %v", st, body)
	}
	a.srv.syncOnce(false)
	if _, err := a.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
		t.Fatalf("the access token after the logout: %v, want revoked", err)
	}
	for range 6 { // 30 min, well within the token's hour; a collection each time
		a.clock.Advance(5 * time.Minute)
		for _, n := range []*testEnv{a, b} {
			n.srv.syncOnce(true)
		}
	}
	for _, n := range []*testEnv{a, b} {
		if _, err := n.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
			t.Errorf("the access token of the revoked login 30 min later (it lives an hour), on %s: %v, want revoked",
				map[*testEnv]string{a: "A", b: "B"}[n], err)
		}
	}
}
