package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A revocation whose store write fails is answered 503 so that the client
// tries again; the node had already put it in its own revocation set, so
// the retry found the token revoked to its expiry there, answered 200 and
// wrote nothing: the other nodes sharing the store took the token until it
// expired. Now the retry writes it. Both for a token revoked by its jti
// and for one past the subject's bound, revoked by the cut-off of its
// client's tokens to the subject.
func TestRevokeRetriedAfterStoreFailureIsStored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before int // revocations that go through first
	}{{"jti", 0}, {"cut-off", maxRevokedPerClient}} {
		t.Run(tc.name, func(t *testing.T) {
			sw := &storeWrites{}
			b := startEnv(t, func(o *Options) { sw.Store = newMemStore(time.Now); o.Store = sw })
			a := startEnv(t, func(o *Options) { o.Store = sw.Store; o.Issuer = b.url; o.now = b.clock.Now })
			revoke := func(tk string) (int, map[string]any) {
				return b.post("/oauth/revoke", url.Values{"token": {tk}}, "backend", backendSec)
			}
			for range tc.before {
				if st, body := revoke(b.ccToken()); st != 200 {
					t.Fatalf("revocation: %d %v", st, body)
				}
			}
			tk := b.ccToken()
			rv := "rv."
			sw.failing.Store(&rv)
			if st, body := revoke(tk); st != 503 {
				t.Fatalf("revocation with the store failing: %d %v, want 503", st, body)
			}
			sw.failing.Store(nil)
			if st, body := revoke(tk); st != 200 {
				t.Fatalf("the revocation tried again: %d %v", st, body)
			}
			a.srv.syncOnce(false)
			if _, err := a.srv.VerifyAccessToken(tk); err != ErrTokenRevoked {
				t.Fatalf("the token on another node after its revocation was tried again and answered 200: %v, want ErrTokenRevoked", err)
			}
		})
	}
}
