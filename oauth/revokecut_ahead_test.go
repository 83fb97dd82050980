package oauth

import (
	"net/url"
	"testing"
	"time"
)

// The cut-off a revocation past the bound of a subject's tokens without
// a login sets is at most the skew ahead of the revoking node's clock,
// however far ahead the revoked token's iat is. Since a0eb75d revokes a
// token issued ahead by more than the skew (a node whose clock leads by
// minutes, or the clock stepped back since), such a token past the bound
// moved the cut-off to its iat: every token the revoking node issued to
// the subject until its clock got there (pastCut moves an iat the skew
// ahead at most) was refused as revoked at birth, on every node. The
// token itself is revoked by its jti.
func TestRevokeCutSparesLaterTokensPastTheSkew(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	ahead := func() time.Time { return b.clock.Now().Add(2 * time.Minute) }
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.now = ahead })
	var toks []string
	for range maxRevokedPerClient + 1 {
		toks = append(toks, a.ccToken())
	}
	for i, tk := range toks {
		if st, body := b.post("/oauth/revoke", url.Values{"token": {tk}}, "backend", backendSec); st != 200 {
			t.Fatalf("revocation %d on B: %d %v", i+1, st, body)
		}
	}
	b.clock.Advance(time.Second)
	fresh := b.ccToken() // issued after every revocation
	a.srv.syncOnce(false)
	for _, n := range []*testEnv{b, a} {
		if _, err := n.srv.VerifyAccessToken(fresh); err != nil {
			t.Errorf("a token B issued a second after the revocations, verified on %s: %v, want valid",
				map[*testEnv]string{a: "A (2 min ahead)", b: "B, the revoking node"}[n], err)
		}
	}
	b.clock.Advance(2 * time.Minute) // B's clock reaches the revoked tokens' iat
	b.srv.syncOnce(false)
	for _, n := range []*testEnv{b, a} {
		for i, tk := range toks {
			if _, err := n.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
				t.Errorf("revoked token %d on %s: %v, want revoked", i+1, map[*testEnv]string{a: "A", b: "B"}[n], err)
			}
		}
	}
}
