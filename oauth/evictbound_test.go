package oauth

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// One user signing in again and again with a client (the password grant
// here; a device's or an authorization code's login is made the same
// way) ends her oldest login at each sign-in past max_refresh_tokens, and
// each login so ended was revoked by an entry of the revocation set (its
// grant id), stored for every node and kept as long as its access tokens
// may live (5.5 min by default): 100 sign-ins left 90 entries, and ~57 a
// second (real password hashes) ~18,800 a node. An ended login's access
// tokens must stop working, so the entries a user's sign-ins may add are
// bounded instead: past max(max_refresh_tokens, 32) of them still live,
// counted in the user's index record (shared by the nodes), a sign-in
// that would end a login whose access tokens still live is refused 429
// temporarily_unavailable, with a Retry-After, and ends nothing; a login
// whose access tokens have all expired is ended without an entry.
func TestLoginEvictionsBoundedPerUser(t *testing.T) {
	e := startEnv(t, nil)
	login := func() (int, map[string]any) {
		return e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
	}
	revs := func() int {
		es, err := e.store.List(e.ctx(), "rv.")
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	var tokens []string // each login's access token, in order
	refused := 0
	for range 100 {
		st, body := login()
		switch {
		case st == 200:
			tokens = append(tokens, body["access_token"].(string))
		case st == 429 && body["error"] == "temporarily_unavailable":
			refused++
		default:
			t.Fatalf("login %d of alice: %d %v", len(tokens)+refused+1, st, body)
		}
	}
	n := revs()
	t.Logf("100 logins of alice with one client: %d made, %d refused, %d revocation entries stored", len(tokens), refused, n)
	if bound := max(DefaultMaxRefreshTokens, maxEndedLogins); n > bound {
		t.Fatalf("100 logins of one user with one client stored %d revocation entries, want at most %d", n, bound)
	}
	// Every login that was ended has its access token refused; the
	// newest max_refresh_tokens logins are live.
	for i, at := range tokens {
		_, err := e.srv.VerifyAccessToken(at)
		live := i >= len(tokens)-DefaultMaxRefreshTokens
		if live && err != nil || !live && err != ErrTokenRevoked {
			t.Fatalf("login %d of %d made: its access token: %v (live: %v)", i+1, len(tokens), err, live)
		}
	}
	if refused == 0 {
		t.Fatal("no login refused past the bound")
	}
	if !strings.Contains(e.logs.String(), "login refused") {
		t.Error("no log line for the refused logins")
	}
	// Once the access tokens have expired, the next logins end the
	// oldest without an entry, and are not refused.
	e.clock.Advance(DefaultAccessTokenLifetime + time.Minute)
	e.srv.syncOnce(true)
	before := revs()
	for i := range DefaultMaxRefreshTokens {
		if st, body := login(); st != 200 {
			t.Fatalf("login %d after the access tokens expired: %d %v", i+1, st, body)
		}
	}
	if after := revs(); after > before {
		t.Fatalf("%d logins ending logins whose access tokens had all expired stored %d revocation entries, want none", DefaultMaxRefreshTokens, after-before)
	}
}

// The bound on the entries a user's logins add is for the nodes sharing
// the store together (it is counted in her index record): logins sent
// to two nodes in turn add no more than those sent to one.
func TestLoginEvictionsBoundedAcrossNodes(t *testing.T) {
	a := startEnv(t, nil)
	b := startEnv(t, func(o *Options) { o.Store = a.store; o.Issuer = a.url; o.now = a.clock.Now })
	made := 0
	for i := range 100 {
		n := []*testEnv{a, b}[i%2]
		st, body := n.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}}, "backend", backendSec)
		switch {
		case st == 200:
			made++
		case st != 429:
			t.Fatalf("login %d of alice: %d %v", i+1, st, body)
		}
	}
	es, err := a.store.List(a.ctx(), "rv.")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100 logins of alice on two nodes in turn: %d made, %d revocation entries stored", made, len(es))
	if bound := max(DefaultMaxRefreshTokens, maxEndedLogins); len(es) > bound {
		t.Fatalf("100 logins of one user on two nodes stored %d revocation entries, want at most %d", len(es), bound)
	}
}
