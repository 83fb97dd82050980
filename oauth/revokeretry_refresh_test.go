package oauth

import (
	"net/url"
	"testing"
)

// An app's sign-out (revoking its refresh token) whose grant revocation
// the store failed is answered 503; tried again, it is carried out. The
// family was deleted before its grant was revoked, so the retry found no
// login, answered 200 and wrote nothing: the login's access tokens, held
// revoked by the node that took the sign-out alone, went on working on
// every other node until they expired. The grant is now revoked first,
// and the family is left for the retry when that fails.
func TestRevokeRefreshTokenRetriedAfterStoreFailure(t *testing.T) {
	a, b, sw, at, rt := signOutStoreFailed(t)
	sw.failing.Store(nil)
	if st, body := b.post("/oauth/revoke", url.Values{"token": {rt}}, "backend", backendSec); st != 200 {
		t.Fatalf("the sign-out tried again: %d %v", st, body)
	}
	a.srv.syncOnce(false)
	if _, err := a.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
		t.Fatalf("the login's access token on another node after the sign-out was tried again and answered 200: %v, want ErrTokenRevoked", err)
	}
	if _, ok := b.srv.lookupFamily(b.ctx(), rt); ok {
		t.Fatal("the refresh token still works after the sign-out")
	}
}
