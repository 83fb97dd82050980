package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A revocation whose store write fails (503: the client tries again)
// gives back the place it took among the bounded ones: those of a
// subject's tokens without a login revoked one by one, and past them the
// 32 places of such tokens issued ahead of the revoking node's clock by
// the skew or more (revoked by their jti, so that the cut-off stays
// within the skew). A failed revocation kept its place: after 32 of them
// (a store that does not answer for a moment), the next token issued
// ahead moved the subject's cut-off to its iat, 2 min ahead here, and
// every token the revoking node then issued to the subject was refused as
// revoked, on every node, until its clock got there.
func TestRevokeFailedGivesItsPlaceBack(t *testing.T) {
	sw := &storeWrites{}
	b := startEnv(t, func(o *Options) { sw.Store = newMemStore(time.Now); o.Store = sw })
	ahead := func() time.Time { return b.clock.Now().Add(2 * time.Minute) }
	a := startEnv(t, func(o *Options) { o.Store = sw.Store; o.Issuer = b.url; o.now = ahead })
	revoke := func(tk string) (int, map[string]any) {
		return b.post("/oauth/revoke", url.Values{"token": {tk}}, "backend", backendSec)
	}
	// The subject's own bound filled, with the store answering.
	for i := range maxRevokedPerClient {
		if st, body := revoke(a.ccToken()); st != 200 {
			t.Fatalf("revocation %d: %d %v", i+1, st, body)
		}
	}
	// As many revocations of tokens issued ahead as there are places for
	// them, each failing in the store.
	rv := "rv."
	sw.failing.Store(&rv)
	for i := range maxRevokedPerClient {
		if st, body := revoke(a.ccToken()); st != 503 {
			t.Fatalf("revocation %d with the store failing: %d %v, want 503", i+1, st, body)
		}
	}
	sw.failing.Store(nil)
	if st, body := revoke(a.ccToken()); st != 200 {
		t.Fatalf("revocation with the store back: %d %v", st, body)
	}
	// B's next token to the subject is good.
	b.clock.Advance(time.Second)
	tk := b.ccToken()
	if _, err := b.srv.VerifyAccessToken(tk); err != nil {
		t.Fatalf("a token B issued after 32 failed revocations and one that went through: %v, want valid", err)
	}
}
