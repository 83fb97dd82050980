package oauth

import (
	"errors"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// revokeLog records what OnRevoke was told.
type revokeLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *revokeLog) add(ids []string) {
	l.mu.Lock()
	l.ids = append(l.ids, ids...)
	l.mu.Unlock()
}

func (l *revokeLog) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.ids, id)
}

func (l *revokeLog) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.ids {
		if x == id {
			n++
		}
	}
	return n
}

// OnRevoke hears each revoked id once: an access token revoked here (its
// jti), a login ended by revoking its refresh token or by reuse detection
// (its gid), at once; and a revocation another node made on the shared
// store at this node's next sync.
func TestOnRevoke(t *testing.T) {
	store := newMemStore(time.Now)
	var la, lb revokeLog
	a := startEnv(t, func(o *Options) { o.Store = store; o.OnRevoke = la.add })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now; o.OnRevoke = lb.add })

	tok := a.ccToken()
	c, _ := a.srv.VerifyAccessToken(tok)
	if st, _ := a.post("/oauth/revoke", url.Values{"token": {tok}}, "backend", backendSec); st != 200 {
		t.Fatal(st)
	}
	if !la.has(c.ID) {
		t.Fatal("OnRevoke was not told the revoked jti at once")
	}
	if lb.has(c.ID) {
		t.Fatal("node B heard of it before syncing")
	}
	b.srv.syncOnce(false)
	if !lb.has(c.ID) {
		t.Fatal("node B's OnRevoke was not told at its next sync")
	}
	a.srv.syncOnce(false)
	b.srv.syncOnce(false)
	if la.count(c.ID) != 1 || lb.count(c.ID) != 1 {
		t.Fatalf("told %d and %d times, want once each", la.count(c.ID), lb.count(c.ID))
	}

	// A login's refresh token revoked: its gid.
	cfg := a.config("backend", backendSec)
	t0, err := cfg.PasswordCredentialsToken(a.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := a.srv.VerifyAccessToken(t0.AccessToken)
	if c0.GrantID == "" {
		t.Fatal("a token with a refresh token has no gid")
	}
	if st, _ := a.post("/oauth/revoke", url.Values{"token": {t0.RefreshToken}}, "backend", backendSec); st != 200 {
		t.Fatal(st)
	}
	if !la.has(c0.GrantID) {
		t.Fatal("revoking a refresh token did not report its login")
	}

	// Reuse detection on node B: the login's gid, on B at once.
	t1, err := cfg.PasswordCredentialsToken(a.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := a.srv.VerifyAccessToken(t1.AccessToken)
	if _, err := refreshVia(b, b.config("backend", backendSec), t1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := refreshVia(b, b.config("backend", backendSec), t1.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("reuse: %v", err)
	}
	if !lb.has(c1.GrantID) {
		t.Fatal("reuse detection did not report the login")
	}
}

// StillValid: revoked, client gone, user gone or without the role; not
// expiry.
func TestStillValid(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec)
	ut, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	uc, _ := e.srv.VerifyAccessToken(ut.AccessToken)
	sc, _ := e.srv.VerifyAccessToken(e.ccToken())
	for _, tc := range []struct {
		c    *Claims
		role string
		want error
	}{
		{uc, "user", nil}, {uc, "admin", nil}, {uc, "viewer", ErrGrantWithdrawn},
		{sc, "service", nil}, {sc, "user", ErrGrantWithdrawn},
	} {
		if err := e.srv.StillValid(tc.c, tc.role); !errors.Is(err, tc.want) && err != tc.want {
			t.Errorf("StillValid(%s, %s) = %v, want %v", tc.c.Subject, tc.role, err, tc.want)
		}
	}
	// Expiry does not end a session.
	e.clock.Advance(time.Hour)
	if err := e.srv.StillValid(uc, "user"); err != nil {
		t.Fatalf("an expired token's session: %v", err)
	}
	// The user leaves the configuration.
	e.users.remove("realm1", "alice")
	if err := e.srv.StillValid(uc, "user"); !errors.Is(err, ErrGrantWithdrawn) {
		t.Fatalf("user removed: %v", err)
	}
	// The client leaves the configuration.
	realms := testRealms(t)
	realms[0].Clients = realms[0].Clients[1:] // without backend
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.StillValid(sc, "service"); !errors.Is(err, ErrGrantWithdrawn) {
		t.Fatalf("client removed: %v", err)
	}
	// Revoked.
	e.srv.SetRealms(testRealms(t))
	if err := e.srv.StillValid(sc, "service"); err != nil {
		t.Fatal(err)
	}
	e.srv.revoke(e.ctx(), sc.ID, sc.Expiry.Add(time.Hour))
	if err := e.srv.StillValid(sc, "service"); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}

// A client refreshing a login and revoking each new access token added one
// entry to the revocation set per round (kept for every node until the
// token would have expired): about 2,900 a second, 57,520 entries (45 MB)
// in 20 s. Past maxRevokedPerGrant of one login's access tokens the login
// itself is revoked instead: the set holds at most that many entries and
// the login's, the login's later tokens are refused, and another login of
// the same user is not touched.
func TestRevokedTokensPerLoginBounded(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec)
	other, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = maxRevokedPerGrant + 20
	for i := range rounds {
		if st, _ := e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}}, "backend", backendSec); st != 200 {
			t.Fatalf("round %d: revoke %d", i, st)
		}
		if tok, err = refreshVia(e, cfg, tok.RefreshToken); err != nil {
			t.Fatalf("round %d: refresh: %v", i, err)
		}
	}
	es, err := e.store.List(e.ctx(), "rv.")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) > maxRevokedPerGrant+1 {
		t.Fatalf("%d revocations stored after %d rounds of refresh and revoke of one login", len(es), rounds)
	}
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("the revoked login's newest access token: %v, want ErrTokenRevoked", err)
	}
	if _, err := e.srv.VerifyAccessToken(other.AccessToken); err != nil {
		t.Fatalf("another login of the same user: %v", err)
	}
	t.Logf("%d rounds: %d revocations stored", rounds, len(es))
}
