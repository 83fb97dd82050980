package oauth

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The "oauth: authentication failed" line keeps the first 64 bytes of the
// client_id or username it names, whether from the form or from HTTP
// Basic, as route's lines do with an authid. Found by review: the line
// carried it whole, so a failed client authentication with a 12 KiB
// client_id wrote a 12,435-byte log line (the form takes up to 16 KiB).
func TestOAuthFailedAuthLogLineBounded(t *testing.T) {
	long := strings.Repeat("A", 12<<10)
	for _, c := range []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
	}{
		{"client_id in the form", url.Values{"grant_type": {"client_credentials"}, "client_id": {long}, "client_secret": {"wrong"}}, "", "", 401},
		{"client_id in HTTP Basic", url.Values{"grant_type": {"client_credentials"}}, long, "wrong", 401},
		{"username", url.Values{"grant_type": {"password"}, "username": {long}, "password": {"guess"}}, "backend", backendSec, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := startEnv(t, nil)
			status, body := env.token(c.form, c.id, c.secret)
			if status != c.status {
				t.Fatalf("status %d %v, want %d", status, body, c.status)
			}
			longest := 0
			for _, l := range strings.Split(env.logs.String(), "\n") {
				if strings.Contains(l, "authentication failed") {
					longest = max(longest, len(l))
					if !strings.Contains(l, "id="+long[:64]+" ") {
						t.Errorf("the line does not name the id's first 64 bytes: %.200s", l)
					}
				}
			}
			t.Logf("longest 'authentication failed' line: %d bytes", longest)
			if longest == 0 {
				t.Fatalf("no authentication failed line:\n%.500s", env.logs.String())
			}
			if longest > 512 {
				t.Fatalf("a failed authentication wrote a %d-byte log line (an id of %d bytes logged whole)", longest, len(long))
			}
		})
	}
}

// Failed client and password authentications are rate limited per source
// address: delays from the fourth failure within a minute, refusal after
// the tenth, for five minutes; other addresses are not affected.
func TestRateLimit(t *testing.T) {
	e := startEnv(t, nil)
	attacker := e.hc
	for i := 1; i <= 10; i++ {
		var st int
		var body map[string]any
		if i%2 == 0 {
			st, body = e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
			wantOAuthError(t, st, body, 401, "invalid_client")
		} else {
			st, body = e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess"}}, "backend", backendSec)
			wantOAuthError(t, st, body, 400, "invalid_grant")
		}
	}
	d := e.recordedDelays()
	if len(d) != 7 || d[0] != 500*time.Millisecond || d[6] != 3500*time.Millisecond {
		t.Fatalf("delays %v, want 0.5 s, 1 s, ... 3.5 s from the fourth failure", d)
	}
	// Refused now, even with the right credentials; Retry-After says when.
	req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", backendSec)
	resp, err := attacker.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("blocked address: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(e.logs.String(), "refusing authentications from an address") {
		t.Error("the block was not logged")
	}
	// The login page refuses too.
	cfg := e.config("dashboard", "")
	b := &browser{t: t, c: &http.Client{Transport: attacker.Transport, Jar: newBrowser(t).c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, _, page := e.authorize(b, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", alicePW, "approve")
	if !strings.Contains(page, "Too many failed sign-ins") {
		t.Fatalf("login page from a blocked address:\n%s", page)
	}
	// Another address is served.
	e.fresh()
	if _, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "alice", alicePW); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Five minutes later the address is served again.
	e.clock.Advance(5*time.Minute + time.Second)
	e.hc = attacker
	if _, err := e.config("backend", backendSec).PasswordCredentialsToken(e.ctx(), "alice", alicePW); err != nil {
		t.Fatalf("after the block: %v", err)
	}
}

// The delay is real when not replaced by the test seam.
func TestRateLimitDelays(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.sleep = nil })
	for i := 0; i < 3; i++ {
		e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
	}
	t0 := time.Now()
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
	wantOAuthError(t, st, body, 401, "invalid_client")
	if el := time.Since(t0); el < 450*time.Millisecond {
		t.Fatalf("the fourth failure was answered after %v, want ≥ 0.5 s", el)
	}
}

// With the on-disk store, a restart keeps the key ring (tokens issued
// before verify after), refresh tokens, revocations and pending device
// codes.
func TestRestartWithDiskStore(t *testing.T) {
	dir := t.TempDir()
	open := func() *DiskStore {
		s, err := OpenDiskStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	e1 := startEnv(t, func(o *Options) { o.Store = s1 })
	cfg := e1.config("backend", backendSec)
	tok, err := cfg.PasswordCredentialsToken(e1.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	revoked := e1.ccToken()
	if st, _ := e1.post("/oauth/revoke", url.Values{"token": {revoked}}, "backend", backendSec); st != 200 {
		t.Fatal(st)
	}
	st, da := e1.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatal(st)
	}
	jwks1 := string(e1.srv.JWKS())
	e1.http.Close()
	e1.srv.Close()
	s1.Close()

	s2 := open()
	defer s2.Close()
	e2 := startEnv(t, func(o *Options) { o.Store = s2; o.Issuer = e1.url; o.now = e1.clock.Now })
	if string(e2.srv.JWKS()) != jwks1 {
		t.Fatalf("the key ring changed across the restart:\n%s\n%s", jwks1, e2.srv.JWKS())
	}
	if _, err := e2.srv.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("a token from before the restart: %v", err)
	}
	if _, err := e2.srv.VerifyAccessToken(revoked); err != ErrTokenRevoked {
		t.Fatalf("a token revoked before the restart: %v", err)
	}
	cfg2 := e2.config("backend", backendSec)
	if _, err := refreshVia(e2, cfg2, tok.RefreshToken); err != nil {
		t.Fatalf("a refresh token from before the restart: %v", err)
	}
	if st, page := e2.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); st != 200 {
		t.Fatalf("approving a device code from before the restart: %d %s", st, page)
	}
	st, body := e2.devicePoll(da["device_code"].(string))
	if st != 200 || body["access_token"] == nil {
		t.Fatalf("device poll after restart: %d %v", st, body)
	}
}

func TestOptionsValidation(t *testing.T) {
	users := newTestUsers()
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"no issuer", Options{}, []string{"issuer URL is required"}},
		{"issuer with query", Options{Issuer: "http://x/?a=1"}, []string{"must not have a query"}},
		{"bad algorithm", Options{Issuer: "http://x", Algorithm: "RS256"}, []string{"want EdDSA or ES256"}},
		{"client errors gathered", Options{Issuer: "http://x", Users: users, Realms: []Realm{{Name: "r", Clients: []Client{
			{ID: "a"},
			{ID: "b", Public: true, SecretHash: "x"},
			{ID: "c", SecretHash: "plain"},
			{ID: "d", Public: true, Grants: []string{GrantClientCredentials}},
			{ID: "e", Public: true, Grants: []string{GrantAuthorizationCode}},
			{ID: "f", Public: true, RedirectURIs: []string{"http://example.com/cb", "https://x/cb#frag", "/relative"}},
			{ID: "g", Public: true, Grants: []string{"implicit"}},
			{ID: "a", Public: true},
		}}}}, []string{
			`"a": needs a secret hash`, `"b": a public client has no secret`, `"c": secret: hash must start`,
			`"d": a public client cannot use client_credentials`, `"e": authorization_code needs redirect_uris`,
			`"http://example.com/cb": http is allowed only for loopback`, "must not have a fragment", "must be absolute",
			`unknown grant "implicit"`, `client "a" is defined twice`,
		}},
		{"realm errors", Options{Issuer: "http://x", Realms: []Realm{{Name: "r", Clients: []Client{{ID: "a", Public: true}}}, {Name: "r"}, {}}},
			[]string{"no user store", `realm "r" is configured twice`, "a realm needs a name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// SetRealms swaps clients: a removed client is refused at once.
func TestSetRealms(t *testing.T) {
	e := startEnv(t, nil)
	e.ccToken()
	realms := testRealms(t)
	realms[0].Clients = realms[0].Clients[1:] // without backend
	if err := e.srv.SetRealms(realms); err != nil {
		t.Fatal(err)
	}
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	wantOAuthError(t, st, body, 401, "invalid_client")
	bad := testRealms(t)
	bad[0].Clients[0].SecretHash = ""
	if err := e.srv.SetRealms(bad); err == nil {
		t.Fatal("an invalid configuration was installed")
	}
}

// Close stops the sync loop; the handler keeps serving what it can.
func TestCloseStopsSync(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.SyncInterval = 10 * time.Millisecond; o.now = time.Now })
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.syncs.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.srv.syncs.Load() < 2 {
		t.Fatal("the sync loop does not run")
	}
	e.srv.Close()
	n := e.srv.syncs.Load()
	time.Sleep(50 * time.Millisecond)
	if e.srv.syncs.Load() != n {
		t.Fatal("the sync loop runs after Close")
	}
	e.srv.Close() // idempotent
	_ = context.Background()
}

// Garbage collection deletes expired records and keeps live ones.
func TestCollectExpired(t *testing.T) {
	e := startEnv(t, nil)
	ctx := e.ctx()
	// Expiring soon: a device code (10 min), an authorization code (1 min),
	// a revocation (5 min). Living long: a login's refresh token (30 days).
	e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	cfg := e.config("dashboard", "")
	v := oauth2.GenerateVerifier()
	e.authorize(newBrowser(t), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "alice", alicePW, "approve")
	e.post("/oauth/revoke", url.Values{"token": {e.ccToken()}}, "backend", backendSec)
	if _, err := e.config("backend", backendSec).PasswordCredentialsToken(ctx, "alice", alicePW); err != nil {
		t.Fatal(err)
	}
	count := func(p string) int {
		es, err := e.store.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := map[string]int{}
	for _, p := range []string{"dc.", "uc.", "ac.", "rv.", "rt.", "ru."} {
		before[p] = count(p)
		if before[p] == 0 {
			t.Fatalf("no %s record to collect", p)
		}
	}
	e.srv.collect(ctx)
	for p, n := range before {
		if count(p) != n {
			t.Fatalf("collect removed a live %s record", p)
		}
	}
	e.clock.Advance(DefaultDeviceCodeLifetime + gcGrace + time.Second)
	e.srv.collect(ctx)
	for _, p := range []string{"dc.", "uc.", "ac.", "rv."} {
		if n := count(p); n != 0 {
			t.Errorf("%d expired %s records left", n, p)
		}
	}
	for _, p := range []string{"rt.", "ru."} {
		if count(p) != before[p] {
			t.Errorf("a live %s record was collected", p)
		}
	}
	e.clock.Advance(DefaultRefreshTokenLifetime)
	e.srv.collect(ctx)
	if n := count("rt.") + count("ru."); n != 0 {
		t.Errorf("%d expired login records left", n)
	}
}

// Parallel guesses from one address get no more secrets checked than the
// lockout threshold: each takes its place before its secret is checked,
// and the others are answered 429 unchecked. Limits are configurable and
// exempt networks are never counted.
func TestRateLimitParallelAndConfig(t *testing.T) {
	var checked atomic.Int32
	e := startEnv(t, func(o *Options) {
		o.AuthLimits = AuthLimits{DelayAfter: 1, BlockAfter: 4}
		o.Users = countingUsers{o.Users, &checked}
	})
	const n = 24
	var wg sync.WaitGroup
	var refusedN atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess"}}, "backend", backendSec)
			if st == http.StatusTooManyRequests {
				refusedN.Add(1)
			}
		}()
	}
	wg.Wait()
	if c := checked.Load(); c > 4 || c == 0 {
		t.Fatalf("%d of %d parallel guesses were checked, want 1..4 (block_after)", c, n)
	}
	if int(refusedN.Load())+int(checked.Load()) != n {
		t.Fatalf("%d checked + %d refused != %d", checked.Load(), refusedN.Load(), n)
	}
	if d := e.recordedDelays(); len(d) == 0 || d[0] != 500*time.Millisecond {
		t.Fatalf("delays %v: want them from the second failure (delay_after 1)", d)
	}

	// An exempt network is neither counted nor locked out.
	x := startEnv(t, func(o *Options) {
		o.AuthLimits = AuthLimits{BlockAfter: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	})
	for i := 0; i < 5; i++ {
		st, body := x.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
		wantOAuthError(t, st, body, 401, "invalid_client")
	}
	if len(x.recordedDelays()) != 0 {
		t.Fatal("an exempt address was delayed")
	}
}

// countingUsers counts password checks.
type countingUsers struct {
	UserStore
	n *atomic.Int32
}

func (u countingUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	u.n.Add(1)
	time.Sleep(20 * time.Millisecond) // a password hash takes a while
	return u.UserStore.Authenticate(realm, authid, password)
}
