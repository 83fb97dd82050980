package oauth

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// twoNodes starts two servers on one store of the given kind, node A with
// access tokens of lifetime a and node B with b: B is a node restarted
// since the realm's token lifetime was shortened from a to b (A, running
// since before, still issues and remembers tokens of a).
func twoNodes(t *testing.T, open func(*testing.T, func() time.Time) Store, a, b time.Duration) (*testEnv, *testEnv) {
	var store Store
	ea := startEnv(t, func(o *Options) {
		store = open(t, o.now)
		o.Store = store
		o.Realms[0].AccessTokenLifetime = a
	})
	eb := startEnv(t, func(o *Options) {
		o.Store, o.Issuer, o.now = store, ea.url, ea.clock.Now
		o.Realms[0].AccessTokenLifetime = b
	})
	return ea, eb
}

// An access token refused because its login was revoked, but only for
// less than the token's own lifetime, is still revoked on its own when a
// client asks: its jti is stored until the token expires. The login of an
// hour-long token is revoked (logout) on a node that knows a 5-minute
// lifetime, so the login's entry lasts 5.5 min; the client then revokes
// the access token too. Revocation used to see the token as revoked
// already and store nothing (answering 200): the token verified again on
// every node once the login's entry expired.
func TestRevokeTokenOfLoginRevokedForLess(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			a, b := twoNodes(t, sk.open, time.Hour, 5*time.Minute)
			tok, err := a.config("backend", backendSec).PasswordCredentialsToken(a.ctx(), "alice", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []string{tok.RefreshToken, tok.AccessToken} {
				if st, body := b.post("/oauth/revoke", url.Values{"token": {tt}}, "backend", backendSec); st != 200 {
					t.Fatalf("revoke on node B: %d %v", st, body)
				}
			}
			a.clock.Advance(10 * time.Minute)
			for _, n := range []*testEnv{a, b} {
				n.srv.syncOnce(true)
				if _, err := n.srv.VerifyAccessToken(tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
					t.Errorf("node %s, 10 min after the revocation, the hour-long token: %v, want ErrTokenRevoked", n.url, err)
				}
			}
		})
	}
}

// Revoking an id that is revoked already keeps the later expiry of the
// two, on the node that revokes, in the store and so on every node: a
// grant revoked first by a node that knows a shorter token lifetime and
// then by one that knows a longer one stays revoked for the longer. The
// store's record used to keep the first expiry (the second Create failed
// and that was taken as done), and the revoking node's own set took the
// last one even when it was earlier.
func TestRevokeKeepsLatestExpiry(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			a, b := twoNodes(t, sk.open, time.Hour, time.Hour)
			tok, err := a.config("backend", backendSec).PasswordCredentialsToken(a.ctx(), "alice", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			c, err := a.srv.VerifyAccessToken(tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			now := a.clock.Now()
			long, short := c.Expiry.Add(time.Minute), now.Add(5*time.Minute)
			if err := b.srv.revoke(b.ctx(), c.GrantID, short); err != nil {
				t.Fatal(err)
			}
			if err := a.srv.revoke(a.ctx(), c.GrantID, long); err != nil {
				t.Fatal(err)
			}
			if err := a.srv.revoke(a.ctx(), c.GrantID, short); err != nil { // does not shorten it
				t.Fatal(err)
			}
			e, err := a.store.Get(a.ctx(), "rv."+c.GrantID)
			if err != nil {
				t.Fatal(err)
			}
			var r revRecord
			if err := json.Unmarshal(e.Value, &r); err != nil || r.Exp != long.Unix() {
				t.Fatalf("the stored revocation expires at %d (%v), want the later expiry %d", r.Exp, err, long.Unix())
			}
			if v, _ := a.srv.revoked.Load(c.GrantID); v != long.Unix() {
				t.Fatalf("node A's revocation set holds the grant until %v, want %d", v, long.Unix())
			}
			a.clock.Advance(30 * time.Minute)
			for _, n := range []*testEnv{a, b} {
				n.srv.syncOnce(true)
				if _, err := n.srv.VerifyAccessToken(tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
					t.Errorf("node %s, past the shorter expiry: %v, want ErrTokenRevoked", n.url, err)
				}
			}
		})
	}
}

// The bound on access tokens revoked one by one counts a user's tokens
// with a client across the user's logins: signing in again does not start
// a new count. It was per login, so a user who signed in again after 31
// revocations could go on: 20 logins of 31 revocations left 630 entries.
// Now the set holds at most maxRevokedPerUser of the user's tokens revoked
// on their own; past them, revoking a token ends its login (its refresh
// token is refused, its access tokens too), one entry per login. Another
// user of the same client is not touched, and once the user's entries
// have expired, a revocation is one token's again.
func TestRevokedTokensBoundedAcrossLogins(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			e := startEnv(t, func(o *Options) { o.Store = sk.open(t, o.now) })
			cfg := e.config("backend", backendSec)
			login := func(user, pw string) *oauth2.Token {
				t.Helper()
				tok, err := cfg.PasswordCredentialsToken(e.ctx(), user, pw)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			revoke := func(at string) {
				t.Helper()
				if st, body := e.post("/oauth/revoke", url.Values{"token": {at}}, "backend", backendSec); st != 200 {
					t.Fatalf("revoke: %d %v", st, body)
				}
			}
			const logins = 20
			var endedLogins []string // the last access token of each login ended
			for i := range logins {
				tok := login("alice", alicePW)
				for range maxRevokedPerUser - 1 {
					revoke(tok.AccessToken)
					next, err := refreshVia(e, cfg, tok.RefreshToken)
					if retrieveErr(err) == "invalid_grant" {
						endedLogins = append(endedLogins, tok.AccessToken)
						break
					}
					if err != nil {
						t.Fatalf("login %d: refresh: %v", i, err)
					}
					tok = next
				}
			}
			es, err := e.store.List(e.ctx(), "rv.")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d logins of up to %d revocations each: %d logins ended, %d entries stored", logins, maxRevokedPerUser-1, len(endedLogins), len(es))
			if len(es) > maxRevokedPerUser+logins {
				t.Fatalf("%d revocations stored after %d logins of one user, want at most %d (%d of its tokens, one per login)", len(es), logins, maxRevokedPerUser+logins, maxRevokedPerUser)
			}
			if len(endedLogins) < logins-1 {
				t.Errorf("%d of %d logins ended, want every login past the bound's", len(endedLogins), logins)
			}
			for _, at := range endedLogins {
				if _, err := e.srv.VerifyAccessToken(at); !errors.Is(err, ErrTokenRevoked) {
					t.Fatalf("the last access token of an ended login: %v, want ErrTokenRevoked", err)
				}
			}
			// Another user of the same client: a revocation is one token's.
			bob := login("bob", bobPW)
			revoke(bob.AccessToken)
			if _, err := e.srv.VerifyAccessToken(bob.AccessToken); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("bob's revoked token: %v", err)
			}
			if _, err := refreshVia(e, cfg, bob.RefreshToken); err != nil {
				t.Fatalf("bob's login after one of its tokens was revoked: %v", err)
			}
			// Past the expiry of alice's entries (a token lifetime and the
			// skew), hers is one token's again.
			e.clock.Advance(6 * time.Minute)
			e.srv.syncOnce(true)
			tok := login("alice", alicePW)
			revoke(tok.AccessToken)
			if _, err := e.srv.VerifyAccessToken(tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("alice's revoked token: %v", err)
			}
			if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
				t.Fatalf("alice's login after one of its tokens was revoked, once her earlier entries expired: %v", err)
			}
		})
	}
}

// RFC 7009 §2.1: the server "verifies whether the token was issued to the
// client making the revocation request. If this validation fails, the
// request is refused and the client is informed of the error". Another
// client's refresh token was answered 200, as if revoked, where another
// client's access token gets unauthorized_client: the client believed
// the login ended while it went on. Both kinds now get the error, and the
// login stays untouched.
func TestRevokeAnotherClientsRefreshToken(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	old := tok.RefreshToken
	if tok, err = refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token string }{
		{"the access token", tok.AccessToken},
		{"the refresh token", tok.RefreshToken},
		{"a rotated-out refresh token", old},
	} {
		st, body := e.post("/oauth/revoke", url.Values{"token": {tc.token}}, "r2", "r2-secret")
		if st != 400 || body["error"] != "unauthorized_client" {
			t.Errorf("another client revoking %s: %d %v, want 400 unauthorized_client", tc.name, st, body)
		}
	}
	// Nothing was revoked: the login refreshes, its access token verifies.
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("the access token after another client's revocations: %v", err)
	}
	if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatalf("the refresh token after another client's revocations: %v", err)
	}
	// A refresh token of no login is still answered 200 (§2.2).
	forged := refreshToken{fam: newFamilyID(), gen: 1, secret: newSecret()}.String()
	if st, body := e.post("/oauth/revoke", url.Values{"token": {forged}}, "r2", "r2-secret"); st != 200 {
		t.Fatalf("revoking an unknown refresh token: %d %v, want 200", st, body)
	}
}
