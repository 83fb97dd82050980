package oauth

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
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
// in 20 s. Past maxRevokedPerUser of one user's access tokens (here all of
// one login) the login itself is revoked instead: the set holds at most that many entries and
// the login's, the login's tokens are refused, its refresh token no longer
// works (also once the login's entry has expired), and another login of
// the same user is not touched. The refresh token used to go on working:
// its new access tokens were refused only until the login's entry expired
// (one token lifetime), and verified again after.
func TestRevokedTokensPerLoginBounded(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			e := startEnv(t, func(o *Options) { o.Store = sk.open(t, o.now) })
			cfg := e.config("backend", backendSec)
			other, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
			if err != nil {
				t.Fatal(err)
			}
			tok, revoked := revokeEachRefreshed(t, e, cfg, tok, maxRevokedPerUser+1)
			es, err := e.store.List(e.ctx(), "rv.")
			if err != nil {
				t.Fatal(err)
			}
			if len(es) > maxRevokedPerUser+1 {
				t.Fatalf("%d revocations stored after %d of one login's access tokens were revoked", len(es), len(revoked))
			}
			for i, at := range revoked {
				if _, err := e.srv.VerifyAccessToken(at); !errors.Is(err, ErrTokenRevoked) {
					t.Fatalf("the revoked login's access token %d: %v, want ErrTokenRevoked", i, err)
				}
			}
			if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
				t.Fatalf("the revoked login's refresh token: %v, want invalid_grant", err)
			}
			// Past the login entry's expiry (a token lifetime and the skew).
			e.clock.Advance(6 * time.Minute)
			e.srv.syncOnce(true)
			if _, err := refreshVia(e, cfg, tok.RefreshToken); retrieveErr(err) != "invalid_grant" {
				t.Fatalf("the revoked login's refresh token once its entry expired: %v, want invalid_grant", err)
			}
			if _, err := refreshVia(e, cfg, other.RefreshToken); err != nil {
				t.Fatalf("another login of the same user: %v", err)
			}
			if !strings.Contains(e.logs.String(), "login is revoked") {
				t.Error("the login's revocation was not logged")
			}
			t.Logf("%d revocations: %d stored", len(revoked), len(es))
		})
	}
}

// A confidential client minting access tokens with client_credentials
// (no login: no refresh token, no gid) and revoking each one added an
// entry to the revocation set per round, kept for every node until the
// token would have expired: about 5,400 a second (21,756 entries, 36 MB
// of heap, in 4 s). Past maxRevokedPerClient of one client's tokens
// without a login revoked one by one, every such token the client was
// issued up to then is revoked by one record (the client and a cut-off
// issue time), moved forward by each later revocation: the store holds
// at most the bound and that record; the client's earlier tokens are
// refused, on this node at once and on another at its next sync, and so
// is a session that logged in with one (StillValid); a token issued after
// the cut-off, another client's tokens and a login's (gid) tokens of the
// same client are not touched.
func TestRevokedTokensPerClientBounded(t *testing.T) {
	store := newMemStore(time.Now)
	var la, lb revokeLog
	a := startEnv(t, func(o *Options) { o.Store = store; o.OnRevoke = la.add })
	b := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = a.url; o.now = a.clock.Now; o.OnRevoke = lb.add })

	early := a.ccToken()                          // never revoked on its own
	earlyB, err := b.srv.VerifyAccessToken(early) // cached on node B
	if err != nil {
		t.Fatal(err)
	}
	r2, err := (&clientcredentials.Config{ClientID: "r2", ClientSecret: "r2-secret", TokenURL: a.url + "/oauth/token"}).Token(a.ctx())
	if err != nil {
		t.Fatal(err)
	}
	login, err := a.config("backend", backendSec).PasswordCredentialsToken(a.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = maxRevokedPerClient + 20
	for i := range rounds {
		a.clock.Advance(time.Second) // the cut-off moves on with each round
		if st, _ := a.post("/oauth/revoke", url.Values{"token": {a.ccToken()}}, "backend", backendSec); st != 200 {
			t.Fatalf("round %d: revoke %d", i, st)
		}
	}
	es, err := store.List(a.ctx(), "rv.")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds of client_credentials and revoke: %d revocations stored", rounds, len(es))
	if len(es) > maxRevokedPerClient+1 {
		t.Errorf("%d revocations stored after %d rounds of one client's client_credentials and revoke, want at most %d", len(es), rounds, maxRevokedPerClient+1)
	}
	if _, err := a.srv.VerifyAccessToken(early); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("the client's earlier token: %v, want ErrTokenRevoked", err)
	}
	a.clock.Advance(time.Second)
	later := a.ccToken()
	for _, tc := range []struct {
		name, tok string
	}{{"a token issued after the cut-off", later}, {"another client's token", r2.AccessToken}, {"a login's token of the same client", login.AccessToken}} {
		if _, err := a.srv.VerifyAccessToken(tc.tok); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Node B: its cached verification of the early token holds until it
	// syncs, then the token and its session are refused; the rest are not.
	b.srv.syncOnce(false)
	if _, err := b.srv.VerifyAccessToken(early); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("node B, after its sync, the client's earlier token: %v, want ErrTokenRevoked", err)
	}
	if err := b.srv.StillValid(earlyB, "service"); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("node B, a session of the client's earlier token: %v, want ErrTokenRevoked", err)
	}
	for _, tok := range []string{later, r2.AccessToken, login.AccessToken} {
		c, err := b.srv.VerifyAccessToken(tok)
		if err != nil {
			t.Errorf("node B, a token that is not revoked: %v", err)
			continue
		}
		if err := b.srv.StillValid(c, c.Roles[0]); err != nil {
			t.Errorf("node B, a session of a token that is not revoked: %v", err)
		}
	}
	// OnRevoke names the cut-off of the client's own tokens (their
	// subject is the client), on A at once and on B at its sync, once
	// each however often the cut-off moved on A.
	id := subjectRevocationID("backend", "backend")
	if la.count(id) == 0 || lb.count(id) != 1 {
		t.Errorf("OnRevoke told of the client's cut-off %d times on A and %d on B, want at least once and once", la.count(id), lb.count(id))
	}
	if !strings.Contains(a.logs.String(), "level=WARN") {
		t.Error("no warning logged")
	}
}

// The per-client bound on tokens without a login revoked one by one
// (maxRevokedPerClient) counts the entries still in the revocation set, as
// the per-user one does: an entry whose token expired no longer counts. A
// password client without refresh tokens whose users sign out (revoke
// their token) now and then: counted since the process started, after 32
// sign-outs spread over hours, each of whose entries expired long ago, the
// 33rd user's sign-out revoked every token the client issued to every
// other user, and every later sign-out did it again.
func TestRevokedTokensPerClientCountLiveOnly(t *testing.T) {
	e := startEnv(t, nil)
	for i := range maxRevokedPerClient {
		tok := e.cliToken("alice", alicePW)
		if st, body := e.post("/oauth/revoke", url.Values{"token": {tok}, "client_id": {"cli"}}, "", ""); st != 200 {
			t.Fatalf("sign-out %d: %d %v", i, st, body)
		}
		e.clock.Advance(time.Hour) // the token, and its entry, expire long before the next
	}
	e.srv.syncOnce(true)
	live := 0
	e.srv.revoked.Range(func(k, v any) bool {
		if v.(int64) > e.clock.Now().Unix() {
			live++
		}
		return true
	})
	bob := e.cliToken("bob", bobPW)
	if _, err := e.srv.VerifyAccessToken(bob); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	// alice signs out once more, 32 hours after her first sign-out.
	tok := e.cliToken("alice", alicePW)
	if st, body := e.post("/oauth/revoke", url.Values{"token": {tok}, "client_id": {"cli"}}, "", ""); st != 200 {
		t.Fatalf("last sign-out: %d %v", st, body)
	}
	_, err := e.srv.VerifyAccessToken(bob)
	t.Logf("%d live revocation entries before the last sign-out; bob's token after alice's sign-out: %v", live, err)
	if errors.Is(err, ErrTokenRevoked) {
		t.Errorf("alice revoking her own token (the client's only live revocation: %d live entries before it) revoked bob's token: %v", live, err)
	}
}

// revokeEachRefreshed revokes n access tokens of tok's login one by one
// (as backend), refreshing the login for each after the first. It returns
// the login's last token and the access tokens revoked.
func revokeEachRefreshed(t *testing.T, e *testEnv, cfg *oauth2.Config, tok *oauth2.Token, n int) (*oauth2.Token, []string) {
	t.Helper()
	var revoked []string
	for i := range n {
		if i > 0 {
			var err error
			if tok, err = refreshVia(e, cfg, tok.RefreshToken); err != nil {
				t.Fatalf("round %d: refresh: %v", i, err)
			}
		}
		if st, _ := e.post("/oauth/revoke", url.Values{"token": {tok.AccessToken}}, "backend", backendSec); st != 200 {
			t.Fatalf("round %d: revoke %d", i, st)
		}
		revoked = append(revoked, tok.AccessToken)
	}
	return tok, revoked
}
