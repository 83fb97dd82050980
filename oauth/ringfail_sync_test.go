package oauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A node whose key ring read fails (a record it cannot decode: damaged,
// or a key type of a newer release during a rolling upgrade; a ring that
// keeps changing under it) goes on verifying tokens with the ring it
// synced last, and must go on reading revocations: the sync round gave up
// before reading them, so that a token revoked on another node kept
// logging in on this one for as long as the ring stayed unreadable.
func TestRevocationsSyncWhileRingUnreadable(t *testing.T) {
	store := newMemStore(time.Now)
	var lb revokeLog
	a := startEnv(t, func(o *Options) { o.Store = store })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now; o.OnRevoke = lb.add })

	tok := a.ccToken()
	if _, err := b.srv.VerifyAccessToken(tok); err != nil {
		t.Fatalf("node B refuses a live token: %v", err)
	}
	ctx := context.Background()
	e, err := store.Get(ctx, ringKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(ctx, ringKey, []byte(`{"keys":[{"kid":"x","jwk":{"kty":"unknown"}}]}`), e.Revision, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.post("/oauth/revoke", url.Values{"token": {tok}}, "backend", backendSec); st != 200 {
		t.Fatal(st)
	}
	b.srv.syncOnce(false)
	if _, err := b.srv.VerifyAccessToken(tok); err != ErrTokenRevoked {
		t.Fatalf("node B, its ring unreadable, verifies a token revoked on node A: %v", err)
	}
	c, _ := a.srv.verify(tok, a.clock.Now(), true)
	if c == nil || !lb.has(c.ID) {
		t.Fatal("node B's OnRevoke was not told")
	}
	if !strings.Contains(b.logs.String(), "cannot sync with the state store") {
		t.Fatal("the failed ring read was not logged")
	}
}
