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
