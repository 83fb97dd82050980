package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A revocation past the bound of a subject's tokens without a login
// revokes the token it was asked for, even when the node that issued it
// has a clock ahead of the revoking node's (within MaxClockSkew). The
// cut-off was the revoking node's now: a token issued by a node 20 s
// ahead carried an iat after it, so the revocation answered 200 and the
// token went on verifying (and logging in) everywhere until it expired.
func TestRevokeCutCoversTheTokenOfASkewedNode(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	ahead := func() time.Time { return b.clock.Now().Add(20 * time.Second) }
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
	a.srv.syncOnce(false)
	for i, tk := range toks {
		for _, n := range []*testEnv{b, a} {
			if _, err := n.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
				t.Errorf("token %d of %d, issued by a node 20 s ahead and revoked on the other (answered 200), verified on %s: %v, want revoked",
					i+1, len(toks), map[*testEnv]string{a: "the issuer", b: "the revoking node"}[n], err)
			}
		}
	}
}

// A token the revoking node issues after the revocation is not under the
// cut-off 6585201 moved to the revoked token's iat, a node's clock ahead.
// With the cut-off at that iat (20 s past the revoking node's clock),
// every token the revoking node issued to the subject for the next 20 s
// was refused as revoked, on every node: a client that revokes each token
// it replaces (past the bound, behind a load balancer) got a dead token
// from the lagging node, again and again.
func TestRevokeCutSparesLaterTokensOfTheRevokingNode(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	ahead := func() time.Time { return b.clock.Now().Add(20 * time.Second) }
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
				map[*testEnv]string{a: "A (20 s ahead)", b: "B, the revoking node"}[n], err)
		}
		for i, tk := range toks {
			if _, err := n.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
				t.Errorf("revoked token %d on %s: %v, want revoked", i+1, map[*testEnv]string{a: "A", b: "B"}[n], err)
			}
		}
	}
}
