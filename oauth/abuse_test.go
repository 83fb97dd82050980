package oauth

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A refresh request asking for a scope that was not granted is refused
// with invalid_scope (RFC 6749 §6); it must not consume the refresh token:
// the client, which never saw a new one, retries with the same token and
// must not be treated as a reuse (which revokes the whole login).
func TestRefreshBadScopeKeepsToken(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"read write"}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "invalid_scope")
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
	if st != 200 || body["refresh_token"] == nil {
		t.Fatalf("refresh after an invalid_scope answer: %d %v, want 200 (the token was not used)", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("the login's access token after an invalid_scope answer: %v", err)
	}
}

// A flood of attempts from as many addresses as the limiter tracks (an
// IPv6 attacker with a /44 has 2^20 /64s) fills its table. Once those
// records are old, the table must make room again: a client from a new
// address, with the right secret, gets its token.
func TestLimiterTableRecovers(t *testing.T) {
	e := startEnv(t, nil)
	l := e.srv.limit
	// A table of 16,384 sources, not the 1,048,576 of limiterMax: the
	// sweeps still double past the bound, as they did past the real one.
	l.max = 4 * limiterMin
	now := e.clock.Now()
	for i := 0; i <= l.max; i++ {
		src := l.sourceOf("[2001:db8:" + strconv.FormatInt(int64(i), 16) + "::1]:4711")
		if ok, _ := l.begin(src, now); ok {
			l.end(src, now, true)
		}
	}
	e.clock.Advance(l.lim.Window + l.lim.Lockout + time.Minute)
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("a new address, long after the flood: %d %v, want 200", st, body)
	}
}

// The device authorization endpoint needs no secret for a public client
// (its client_id is printed on every device): each request stores two
// records for the code's lifetime plus gcGrace (20 min by default). One
// address must not be able to make them without bound.
func TestDeviceAuthorizationFloodBounded(t *testing.T) {
	e := startEnv(t, nil)
	ok, refused := 0, 0
	for i := 0; i < 200; i++ {
		st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		switch st {
		case 200:
			ok++
		case 429:
			refused++
		default:
			t.Fatalf("device authorization %d: %d %v", i, st, body)
		}
	}
	es, _ := e.store.List(e.ctx(), "dc.")
	if refused == 0 || len(es) > 100 {
		t.Fatalf("200 device authorizations from one address: %d granted, %d refused, %d device codes stored", ok, refused, len(es))
	}
	// Another address is not affected.
	first := e.hc
	e.fresh()
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 200 {
		t.Fatalf("another address: %d %v", st, body)
	}
	// Nor is the first one, a while later.
	e.clock.Advance(10 * time.Minute)
	e.hc = first
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 200 {
		t.Fatalf("later: %d %v", st, body)
	}
}

// A key that leaves the ring (an operator removes a leaked key from
// keys.ring; a node of a mesh syncs another node's new ring) no longer
// verifies anything: a token it signed that was verified (cached) before
// must fail as it would on a node that never saw it. The forged token here
// is what a holder of the leaked key makes: a year of validity.
func TestRemovedKeyNotCached(t *testing.T) {
	e := startEnv(t, nil)
	now := e.clock.Now()
	forged, err := e.srv.issue(&jwtClaims{Iss: e.srv.issuer, Sub: "mallory", Aud: "realm1", Exp: now.Add(365 * 24 * time.Hour).Unix(),
		Iat: now.Unix(), Jti: "forged-1", Roles: []string{"admin"}, ClientID: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.VerifyAccessToken(forged); err != nil {
		t.Fatal(err)
	}
	// The operator drops the leaked ring: the next sync generates a new one.
	if err := e.store.Delete(e.ctx(), ringKey, 0); err != nil {
		t.Fatal(err)
	}
	old, _ := headerOf(t, forged)["kid"].(string)
	e.srv.syncOnce(false)
	if e.srv.ring.Load().byKid[old] != nil {
		t.Fatal("the old key is still in the ring")
	}
	if _, err := e.srv.verify(forged, e.clock.Now(), false); err != ErrTokenSignature {
		t.Fatalf("uncached verification: %v, want ErrTokenSignature", err)
	}
	if c, err := e.srv.VerifyAccessToken(forged); err != ErrTokenSignature {
		t.Fatalf("a token of a removed key: %+v %v, want ErrTokenSignature", c, err)
	}
}

// keys.ring overwritten by a record that decodes to no keys ("null", "{}"
// from a damaged store or another version) is garbage like any other: the
// server keeps verifying with the ring it has, and does not replace the
// shared record with a new key (which would invalidate every outstanding
// token on every node of the mesh).
func TestEmptyKeyRingRecordIsGarbage(t *testing.T) {
	for _, g := range []string{"null", "{}", `{"keys":[]}`} {
		e := startEnv(t, nil)
		tok := e.ccToken()
		overwrite(t, e.store, ringKey, []byte(g))
		e.srv.syncOnce(false)
		if _, err := e.srv.verify(tok, e.clock.Now(), false); err != nil {
			t.Errorf("%s over keys.ring: a token issued before: %v", g, err)
		}
		if r, _ := e.store.Get(e.ctx(), ringKey); string(r.Value) != g {
			t.Errorf("%s over keys.ring: the server replaced it with a new ring", g)
		}
	}
}

// hookUsers runs a hook inside Authenticate (a password hash takes tens
// of milliseconds: other requests run meanwhile).
type hookUsers struct {
	*testUsers
	hook func()
}

func (u *hookUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	if u.hook != nil {
		u.hook()
	}
	return u.testUsers.Authenticate(realm, authid, password)
}

// The device keeps polling while the user signs in on the page; a poll
// that lands while the password is being checked must not make the
// user's approval fail ("The request changed meanwhile").
func TestDeviceApprovalDuringPoll(t *testing.T) {
	hu := &hookUsers{}
	e := startEnv(t, func(o *Options) { hu.testUsers = o.Users.(*testUsers); o.Users = hu })
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	poller := sourceClient()
	hu.hook = func() {
		req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(url.Values{"grant_type": {deviceGrantType}, "device_code": {dc}, "client_id": {"device"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := poller.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	st2, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve")
	hu.hook = nil
	if st2 != 200 || !strings.Contains(page, "signed in as alice") {
		t.Fatalf("approval while the device polls: %d %s", st2, page)
	}
	e.clock.Advance(10 * time.Second)
	if st, body := e.devicePoll(dc); st != 200 {
		t.Fatalf("poll after approval: %d %v", st, body)
	}
}

// A login's access tokens are revoked with it for as long as they can
// live. A reload that shortens the realm's access-token lifetime does not
// shorten the tokens already issued: revoking their login afterwards must
// still outlast them.
func TestGrantRevocationOutlastsTokensAfterReload(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Realms[0].AccessTokenLifetime = time.Hour })
	cfg := e.config("backend", backendSec)
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	realms := testRealms(t)
	realms[0].AccessTokenLifetime = 5 * time.Minute
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	// The user logs out: the refresh token is revoked, and its login.
	st, body := e.post("/oauth/revoke", url.Values{"token": {tok.RefreshToken}}, "backend", backendSec)
	if st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Fatalf("right after the logout: %v", err)
	}
	e.clock.Advance(10 * time.Minute)
	e.srv.syncOnce(true)
	if c, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Fatalf("10 min after the logout, the hour-long token of the revoked login: %+v %v, want ErrTokenRevoked", c, err)
	}
}

// Many addresses together (an IPv6 attacker's /48 holds 65,536 /64s, each
// allowed deviceAuthsPerMinute) must not fill the store either: a node
// issues at most its per-minute budget of device authorizations from all
// addresses, answers the rest 429 slow_down without storing anything, and
// issues again the next minute.
func TestDeviceAuthorizationsBoundedPerNode(t *testing.T) {
	e := startEnv(t, nil)
	e.srv.deviceAuths.max = 40 // the test's scale: 3 addresses of 30
	ok, refused := 0, 0
	for a := 0; a < 3; a++ {
		e.fresh()
		for i := 0; i < deviceAuthsPerMinute; i++ {
			st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
			switch {
			case st == 200:
				ok++
			case st == 429 && body["error"] == "slow_down":
				refused++
			default:
				t.Fatalf("address %d, request %d: %d %v", a, i, st, body)
			}
		}
	}
	es, _ := e.store.List(e.ctx(), "dc.")
	if ok != 40 || refused != 50 || len(es) != 40 {
		t.Fatalf("90 device authorizations from 3 addresses with a node budget of 40: %d granted, %d refused, %d device codes stored", ok, refused, len(es))
	}
	if n := strings.Count(e.logs.String(), "refusing device authorizations"); n != 1 {
		t.Fatalf("the refusal was logged %d times, want once a minute", n)
	}
	// A minute and a second on (the minute slides: the 40 of one moment
	// count whole for exactly a minute, then 39 of them).
	e.clock.Advance(time.Minute + time.Second)
	e.fresh()
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 200 {
		t.Fatalf("the next minute: %d %v", st, body)
	}
}
