package oauth

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Grants through golang.org/x/oauth2, a third-party client, over real
// HTTP; the tokens verified by our VerifyAccessToken and by go-oidc through
// the JWKS endpoint.

// verifyThirdParty checks a token with go-oidc against the JWKS.
func (e *testEnv) verifyThirdParty(raw, realm, alg string) *oidc.IDToken {
	e.t.Helper()
	ks := oidc.NewRemoteKeySet(e.ctx(), e.url+"/.well-known/jwks.json")
	v := oidc.NewVerifier(e.url, ks, &oidc.Config{ClientID: realm, SupportedSigningAlgs: []string{alg}, Now: e.clock.Now})
	tok, err := v.Verify(e.ctx(), raw)
	if err != nil {
		e.t.Fatalf("go-oidc refuses our token: %v", err)
	}
	return tok
}

func TestPasswordGrant(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || time.Until(tok.Expiry) < 4*time.Minute {
		t.Fatalf("token %+v: want a Bearer token, a refresh token, ~5 min", tok)
	}
	c, err := e.srv.VerifyAccessToken(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Audience != "realm1" || c.ClientID != "backend" || !slices.Equal(c.Roles, []string{"user", "admin"}) ||
		!slices.Equal(c.Scopes, []string{"read"}) || c.Issuer != e.url || c.ID == "" || c.GrantID == "" ||
		c.Expiry.Sub(c.IssuedAt) != DefaultAccessTokenLifetime {
		t.Fatalf("claims %+v", c)
	}
	// A third-party library verifies it through the JWKS.
	idt := e.verifyThirdParty(tok.AccessToken, "realm1", "EdDSA")
	var claims struct {
		Roles    []string `json:"roles"`
		Scope    string   `json:"scope"`
		ClientID string   `json:"client_id"`
		Jti      string   `json:"jti"`
	}
	idt.Claims(&claims)
	if idt.Subject != "alice" || claims.Scope != "read" || claims.ClientID != "backend" || claims.Jti != c.ID || len(claims.Roles) != 2 {
		t.Fatalf("go-oidc sees sub %q claims %+v", idt.Subject, claims)
	}
	e.checkLogs(tok.AccessToken, tok.RefreshToken)
}

func TestPasswordGrantRefused(t *testing.T) {
	e := startEnv(t, nil)
	for _, tc := range []struct {
		name, client, secret, user, pw, scope string
		want                                  string
	}{
		{"wrong password", "backend", backendSec, "alice", "nope", "", "invalid_grant"},
		{"unknown user", "backend", backendSec, "mallory", alicePW, "", "invalid_grant"},
		{"user of another realm", "backend", backendSec, "carol", "carol-pw", "", "invalid_grant"},
		{"scope not allowed", "backend", backendSec, "alice", alicePW, "admin", "invalid_scope"},
		{"grant not allowed", "device", "", "alice", alicePW, "", "unauthorized_client"},
		{"wrong client secret", "backend", "wrong", "alice", alicePW, "", "invalid_client"},
		{"unknown client", "ghost", "x", "alice", alicePW, "", "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.fresh()
			cfg := e.config(tc.client, tc.secret)
			if tc.scope != "" {
				cfg.Scopes = []string{tc.scope}
			}
			_, err := cfg.PasswordCredentialsToken(e.ctx(), tc.user, tc.pw)
			if got := retrieveErr(err); got != tc.want {
				t.Fatalf("error %v (%q), want %q", err, got, tc.want)
			}
		})
	}
	// A public client presenting a secret is refused; repeated parameters
	// and a missing grant_type are invalid_request; an unknown grant type
	// unsupported_grant_type.
	st, body := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "client_id": {"cli"}, "client_secret": {"x"}}, "", "")
	wantOAuthError(t, st, body, 401, "invalid_client")
	st, body = e.token(url.Values{"grant_type": {"password", "password"}, "client_id": {"cli"}}, "", "")
	wantOAuthError(t, st, body, 400, "invalid_request")
	st, body = e.token(url.Values{"client_id": {"cli"}}, "", "")
	wantOAuthError(t, st, body, 400, "invalid_request")
	st, body = e.token(url.Values{"grant_type": {"implicit"}, "client_id": {"cli"}}, "", "")
	wantOAuthError(t, st, body, 400, "unsupported_grant_type")
	// A Basic-authenticated failure gets WWW-Authenticate (RFC 6749 §5.2).
	req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", "wrong")
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("Basic auth failure: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestClientCredentials(t *testing.T) {
	e := startEnv(t, nil)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: "backend", ClientSecret: backendSec, TokenURL: e.url + "/oauth/token", Scopes: []string{"write"}, AuthStyle: style}
		tok, err := cc.Token(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != "" {
			t.Fatal("client_credentials returned a refresh token (RFC 6749 §4.4.3: SHOULD NOT)")
		}
		c, err := e.srv.VerifyAccessToken(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != "backend" || !slices.Equal(c.Roles, []string{"service"}) || !slices.Equal(c.Scopes, []string{"write"}) || c.GrantID != "" {
			t.Fatalf("claims %+v", c)
		}
		e.verifyThirdParty(tok.AccessToken, "realm1", "EdDSA")
	}
	// Without scope the token carries all the client's scopes.
	cc := clientcredentials.Config{ClientID: "backend", ClientSecret: backendSec, TokenURL: e.url + "/oauth/token"}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := e.srv.VerifyAccessToken(tok.AccessToken); !slices.Equal(c.Scopes, []string{"read", "write"}) {
		t.Fatalf("default scopes %v", c.Scopes)
	}
	cc.ClientSecret = "wrong"
	if _, err := cc.Token(e.ctx()); retrieveErr(err) != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
	// A public client cannot use client_credentials.
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {"device"}}, "", "")
	wantOAuthError(t, st, body, 400, "unauthorized_client")
}

// refreshVia makes x/oauth2 refresh: a token whose access part expired.
func refreshVia(e *testEnv, cfg *oauth2.Config, refresh string) (*oauth2.Token, error) {
	return cfg.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: refresh, Expiry: time.Now().Add(-time.Hour)}).Token()
}

func TestRefreshRotation(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec)
	t0, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := e.srv.VerifyAccessToken(t0.AccessToken)
	t1, err := refreshVia(e, cfg, t0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if t1.RefreshToken == "" || t1.RefreshToken == t0.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	c1, err := e.srv.VerifyAccessToken(t1.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Subject != "alice" || c1.GrantID != c0.GrantID || c1.ID == c0.ID {
		t.Fatalf("refreshed claims %+v (first %+v)", c1, c0)
	}
	t2, err := refreshVia(e, cfg, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// Reuse of a rotated-out token revokes the whole family: the reused
	// token, the current one, and the access tokens issued from them.
	if _, err := refreshVia(e, cfg, t0.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("reused refresh token: %v, want invalid_grant", err)
	}
	if _, err := refreshVia(e, cfg, t2.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("current token after reuse detection: %v, want invalid_grant (family revoked)", err)
	}
	for _, at := range []string{t0.AccessToken, t1.AccessToken, t2.AccessToken} {
		if _, err := e.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
			t.Fatalf("access token of a revoked family: %v, want ErrTokenRevoked", err)
		}
	}
	if !strings.Contains(e.logs.String(), "refresh token reuse") {
		t.Error("reuse was not logged")
	}
	e.checkLogs(t0.RefreshToken, t1.RefreshToken, t2.RefreshToken)
}

func TestRefreshRefused(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	// Another client cannot use it; a garbage token is unknown; a broader
	// scope is refused (none of these burns the token).
	st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "r2", "r2-secret")
	wantOAuthError(t, st, body, 400, "invalid_grant")
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "invalid_grant")
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"read write"}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "invalid_scope")
	// A forged secret for a real family is treated as reuse.
	tok2, _ := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	rt, _ := parseRefreshToken(tok2.RefreshToken)
	rt.secret = make([]byte, 32)
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.String()}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "invalid_grant")
	if _, err := refreshVia(e, cfg, tok2.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("family of a forged token still works: %v", err)
	}
	// Expiry: 30 days unused.
	tok3, _ := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	e.clock.Advance(DefaultRefreshTokenLifetime + time.Second)
	if _, err := refreshVia(e, cfg, tok3.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("expired refresh token: %v", err)
	}
	// A user removed from the configuration cannot refresh.
	tok4, _ := cfg.PasswordCredentialsToken(e.ctx(), "bob", bobPW)
	e.users.remove("realm1", "bob")
	if _, err := refreshVia(e, cfg, tok4.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("refresh of a removed user: %v", err)
	}
}

// Two uses of one refresh token at once: at most one wins, and then the
// family is revoked (the loser is a reuse).
func TestRefreshConcurrentUse(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec)
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins []string
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
			if st == 200 {
				mu.Lock()
				wins = append(wins, body["refresh_token"].(string))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(wins) > 1 {
		t.Fatalf("%d concurrent uses of one refresh token succeeded", len(wins))
	}
	for _, w := range wins {
		if _, err := refreshVia(e, cfg, w); err == nil {
			t.Fatal("the winner's token survived a concurrent reuse")
		}
	}
}

// Logins per user and client are bounded: the eleventh ends the first.
func TestRefreshTokensBounded(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Realms[0].MaxRefreshTokens = 3 })
	cfg := e.config("backend", backendSec)
	var toks []*oauth2.Token
	for i := 0; i < 4; i++ {
		tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		e.clock.Advance(time.Second)
	}
	if _, err := refreshVia(e, cfg, toks[0].RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("the oldest of 4 logins (bound 3) still refreshes: %v", err)
	}
	if _, err := e.srv.VerifyAccessToken(toks[0].AccessToken); err != ErrTokenRevoked {
		t.Fatalf("the evicted login's access token: %v, want revoked", err)
	}
	for _, tok := range toks[1:] {
		if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
			t.Fatalf("a recent login cannot refresh: %v", err)
		}
	}
	// bob's logins are counted apart.
	if _, err := cfg.PasswordCredentialsToken(e.ctx(), "bob", bobPW); err != nil {
		t.Fatal(err)
	}
	es, _ := e.store.List(e.ctx(), "rt.")
	if len(es) != 4 {
		t.Fatalf("%d families stored, want 4 (3 of alice, 1 of bob)", len(es))
	}
}

// A refresh whose access token cannot be signed (no key active yet: the
// clock stepped back past the key's start, as on a board that boots
// before its clock is set) fails without consuming the refresh token.
// The family used to be rotated first: the client got an error and no new
// token, and its retry with the old one was taken for reuse and ended the
// login.
func TestRefreshMintFailureKeepsToken(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(-time.Hour)
	st, body := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
	if st < 500 || body["access_token"] != nil || body["refresh_token"] != nil {
		t.Fatalf("refresh with no signing key active: %d %v, want a server error and no token", st, body)
	}
	e.clock.Advance(time.Hour)
	st, body = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "backend", backendSec)
	if st != 200 || body["access_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("the refresh token after a failed refresh: %d %v, want new tokens", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatalf("the new access token: %v", err)
	}
}

// A login that was logged out does not count toward the bound: with
// bound 3, logins A and B, B logged out, and two more logins C and D
// leave A alive (three live logins). Counted until it expired, B's ended
// login made D end A, the user's other device.
func TestRefreshTokensBoundSkipsEnded(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.Realms[0].MaxRefreshTokens = 3 })
	cfg := e.config("backend", backendSec)
	login := func() *oauth2.Token {
		t.Helper()
		tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		return tok
	}
	a, b := login(), login()
	if st, body := e.post("/oauth/revoke", url.Values{"token": {b.RefreshToken}}, "backend", backendSec); st != 200 {
		t.Fatalf("logout: %d %v", st, body)
	}
	login()
	login()
	a2, err := refreshVia(e, cfg, a.RefreshToken)
	if err != nil {
		t.Fatalf("the first login, one of three live (bound 3), cannot refresh: %v", err)
	}
	// The bound still holds: a fourth live login ends the oldest (A).
	login()
	if _, err := refreshVia(e, cfg, a2.RefreshToken); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("the oldest of four live logins (bound 3) still refreshes: %v", err)
	}
}

// TestHugeRefreshTokenLifetime (found by the review of the command line
// and configuration): the store kept an entry until now + ttl in unix
// nanoseconds, which wrapped past the year 2262, so with a
// RefreshTokenLifetime of 2500000h (meant as "never expires unused") the
// refresh token a password grant had just returned was refused at once
// (invalid_grant). The store now saturates the expiry.
func TestHugeRefreshTokenLifetime(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		for i := range o.Realms {
			o.Realms[i].RefreshTokenLifetime = 2500000 * time.Hour
		}
	})
	cfg := e.config("backend", backendSec)
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatalf("refresh right after the login, RefreshTokenLifetime 2500000h: %v", err)
	}
	s := newMemStore(time.Now)
	if _, err := s.Create(context.Background(), "k", []byte("v"), math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "k"); err != nil {
		t.Fatalf("an entry with the largest ttl: %v", err)
	}
}
