package oauth

import (
	"net/url"
	"testing"
	"time"
)

// An app's sign-out whose grant revocation the store failed is answered
// 503, and an app that does not try it again (most ignore a sign-out's
// errors) left the login working on every other node: since 5522c66 the
// family is kept for the retry, so its refresh token kept refreshing
// there, and its access tokens, revoked on the node that took the
// sign-out alone, kept working elsewhere until they expired. The node now
// writes the revocations whose write failed at its next sync round that
// reaches the store, and a refresh of a login whose grant is revoked is
// refused (and the family ended).
func TestSignOutNotRetriedReachesOtherNodes(t *testing.T) {
	a, b, sw, at, rt := signOutStoreFailed(t)
	sw.failing.Store(nil) // the store answers again; the app does not retry
	b.srv.syncOnce(false)
	a.srv.syncOnce(false)
	if _, err := a.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
		t.Errorf("the login's access token on another node after a sign-out answered 503 and the store back: %v, want ErrTokenRevoked", err)
	}
	st, body := a.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "backend", backendSec)
	if st != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a refresh on another node after a sign-out answered 503 and the store back: %d %v, want 400 invalid_grant", st, body)
	}
}

// The login of a sign-out answered 503 and not tried again stays refused
// after its grant's revocation expires (its access tokens' lifetime, 5.5
// min by default): the family kept for the retry is ended at the sync
// that writes the revocation. Refused only while the grant was revoked
// (8230493), its refresh token, kept by another device or taken, refreshed
// again on every node once the revocation expired, for the refresh
// lifetime.
func TestSignOutNotRetriedStaysEndedPastRevocation(t *testing.T) {
	a, b, sw, _, rt := signOutStoreFailed(t)
	sw.failing.Store(nil) // the store answers again; the app does not retry
	b.srv.syncOnce(false)
	a.srv.syncOnce(false)
	// No refresh until the grant's revocation has expired.
	b.clock.Advance(DefaultAccessTokenLifetime + time.Minute)
	b.srv.syncOnce(false)
	a.srv.syncOnce(false)
	for _, n := range []*testEnv{a, b} {
		st, body := n.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "backend", backendSec)
		if st != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("a refresh after a sign-out answered 503, once its grant's revocation expired: %d %v, want 400 invalid_grant", st, body)
		}
	}
}

// A sync round that reaches the store while it still refuses the
// revocations' writes (its reads answered) tries one of those held here
// unstored, not every one: each round (every 5 s) wrote them all again,
// n failing writes a round for as long as they lived (5.5 min), the round
// stretched by each (up to its deadline, 4 rounds), however many a client
// revoking its tokens during the failure had left.
func TestUnstoredRevocationsStopAtStoreFailure(t *testing.T) {
	sw := &storeWrites{}
	e := startEnv(t, func(o *Options) { sw.Store = newMemStore(time.Now); o.Store = sw })
	rv := "rv."
	sw.failing.Store(&rv)
	const n = 20
	for i := range n {
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
		if st != 200 {
			t.Fatalf("token %d: %d %v", i, st, body)
		}
		if st, body := e.post("/oauth/revoke", url.Values{"token": {body["access_token"].(string)}}, "backend", backendSec); st != 503 {
			t.Fatalf("revocation %d with the store failing them: %d %v, want 503", i, st, body)
		}
	}
	before := sw.writes.Load()
	e.srv.syncOnce(false)
	if w := sw.writes.Load() - before; w > 2 {
		t.Errorf("a sync round with the store refusing revocations wrote %d times for %d unstored revocations, want at most 2", w, n)
	}
	sw.failing.Store(nil)
	e.srv.syncOnce(false)
	e.srv.unstored.Range(func(k, _ any) bool {
		t.Errorf("%q still unstored after a round with the store back", k)
		return true
	})
}

// signOutStoreFailed starts two nodes, b and a, sharing a store whose
// revocation writes fail (sw.failing, "rv."), logs alice in on b and signs
// her out there (her refresh token revoked), answered 503: the access and
// refresh tokens of that login, sw still failing revocations.
func signOutStoreFailed(t *testing.T) (a, b *testEnv, sw *storeWrites, at, rt string) {
	t.Helper()
	sw = &storeWrites{}
	b = startEnv(t, func(o *Options) { sw.Store = newMemStore(time.Now); o.Store = sw })
	a = startEnv(t, func(o *Options) { o.Store = sw.Store; o.Issuer = b.url; o.now = b.clock.Now })
	st, body := b.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("alice's login: %d %v", st, body)
	}
	at, rt = body["access_token"].(string), body["refresh_token"].(string)
	rv := "rv."
	sw.failing.Store(&rv)
	if st, body := b.post("/oauth/revoke", url.Values{"token": {rt}}, "backend", backendSec); st != 503 {
		t.Fatalf("the sign-out with the store failing revocations: %d %v, want 503", st, body)
	}
	return a, b, sw, at, rt
}
