package oauth

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"
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
