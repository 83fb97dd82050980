package oauth

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// failingRT is a store whose reads (or deletes) of refresh-token families
// fail while armed, as a mesh's store that does not answer for a moment.
type failingRT struct {
	Store
	gets, deletes atomic.Bool
}

var errUnavailable = errors.New("edge: kv: the mesh's store is unavailable: get: nats: timeout")

func (s *failingRT) Get(ctx context.Context, key string) (Entry, error) {
	if s.gets.Load() && strings.HasPrefix(key, "rt.") {
		return Entry{}, errUnavailable
	}
	return s.Store.Get(ctx, key)
}

func (s *failingRT) Delete(ctx context.Context, key string, rev uint64) error {
	if s.deletes.Load() && strings.HasPrefix(key, "rt.") {
		return errUnavailable
	}
	return s.Store.Delete(ctx, key, rev)
}

// Revoking a refresh token (an app's sign-out) that the store could not
// carry out was answered 200, as if the login had ended: the app dropped
// its tokens and told its user they were signed out, while the refresh
// token went on working for whoever else held it. Like a failed access
// token revocation, it is answered 503 temporarily_unavailable, and the
// client can try again.
func TestRevokeRefreshTokenStoreFailure(t *testing.T) {
	st := &failingRT{}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
	})
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		arm  *atomic.Bool
	}{{"the family cannot be read", &st.gets}, {"the family cannot be deleted", &st.deletes}} {
		tc.arm.Store(true)
		status, body := e.post("/oauth/revoke", url.Values{"token": {tok.RefreshToken}}, "backend", backendSec)
		tc.arm.Store(false)
		if status != 503 || body["error"] != "temporarily_unavailable" {
			_, still := e.srv.lookupFamily(context.Background(), tok.RefreshToken)
			t.Errorf("revoking the refresh token when %s: %d %v, want 503 temporarily_unavailable (the refresh token still works: %v)", tc.name, status, body, still)
		}
	}
	// Once the store answers, the revocation goes through.
	if status, body := e.post("/oauth/revoke", url.Values{"token": {tok.RefreshToken}}, "backend", backendSec); status != 200 {
		t.Fatalf("revocation once the store answers: %d %v", status, body)
	}
	if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("the revoked refresh token: %v", err)
	}
}

// TestRevokePastBoundEndsGrantWhenFamilyDeleteFails: past the per-user
// bound of access tokens revoked one by one, revoking another revokes the
// token's login (endGrant): its refresh-token family is deleted and its
// grant revoked. When the store could not delete the family (a mesh's
// store that does not answer, or a Delete starved by a holder refreshing
// in a loop), the grant was not revoked either: the token asked to be
// revoked, and every other access token of the login, went on working.
// The grant is now revoked all the same (as endFamily does), and the
// answer is still 503 temporarily_unavailable, so that the client tries
// again.
func TestRevokePastBoundEndsGrantWhenFamilyDeleteFails(t *testing.T) {
	st := &failingRT{}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
	})
	cfg := e.config("backend", backendSec)
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ = revokeEachRefreshed(t, e, cfg, tok, maxRevokedPerUser)
	if tok, err = refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	st.deletes.Store(true)
	status, body := e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}}, "backend", backendSec)
	st.deletes.Store(false)
	if status != 503 || body["error"] != "temporarily_unavailable" {
		t.Errorf("revoking past the bound while the family cannot be deleted: %d %v, want 503 temporarily_unavailable (the refresh token still works)", status, body)
	}
	if c, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Errorf("the access token asked to be revoked, its login's family not deleted: %+v %v, want ErrTokenRevoked (its grant revoked)", c, err)
	}
}
