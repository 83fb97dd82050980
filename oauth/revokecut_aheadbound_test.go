package oauth

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// TestRevokeAheadPastTheBoundStaysBounded: the tokens without a login of
// one client and subject revoked one by one are bounded in the revocation
// set (maxRevokedPerClient; past it a cut-off, one entry), also when they
// were issued ahead of the revoking node's clock by more than the skew.
// Since c918f03 each such token past the bound was revoked by its jti (so
// that the cut-off stays within the skew): a client of a mesh with a node
// whose clock leads by minutes, minting there and revoking elsewhere in a
// loop, added one entry to every node's revocation set a revocation
// again, unbounded, as before the bound (~5,400 a second, 36 MB in 4 s).
// Past a second bound of them, the cut-off goes to the token's iat as it
// did before c918f03, and every token is revoked on every node.
func TestRevokeAheadPastTheBoundStaysBounded(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	ahead := func() time.Time { return b.clock.Now().Add(2 * time.Minute) }
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.now = ahead })
	const n = 3*maxRevokedPerClient + 4
	var toks []string
	for range n {
		toks = append(toks, a.ccToken())
	}
	for i, tk := range toks {
		if st, body := b.post("/oauth/revoke", url.Values{"token": {tk}}, "backend", backendSec); st != 200 {
			t.Fatalf("revocation %d on B: %d %v", i+1, st, body)
		}
	}
	rv, err := store.List(context.Background(), "rv.")
	if err != nil {
		t.Fatal(err)
	}
	if most := 2*maxRevokedPerClient + 1; len(rv) > most {
		t.Errorf("%d revocation records after %d tokens issued 2 min ahead were revoked one by one, want at most %d (the bound's, one cut-off)", len(rv), n, most)
	}
	a.srv.syncOnce(false)
	for i, tk := range toks {
		if _, err := a.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
			t.Errorf("revoked token %d on A, which issued it: %v, want revoked", i+1, err)
		}
	}
	b.clock.Advance(2 * time.Minute) // B's clock reaches the revoked tokens' iat
	b.srv.syncOnce(false)
	for i, tk := range toks {
		if _, err := b.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
			t.Errorf("revoked token %d on B: %v, want revoked", i+1, err)
		}
	}
}
