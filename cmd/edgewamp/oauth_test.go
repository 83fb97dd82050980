package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// OAuth2 in cmd: the oauth: configuration, the user store over the realms'
// users, and WAMP ticket logins with access tokens (tokenVerifier,
// route.TicketAuth), against a real oauth.Server built from a configuration the
// way `edgewamp run` builds it.

const (
	oaAlicePW   = "alice-oauth-pw"
	oaBobPW     = "bob-oauth-pw"
	oaBackendPW = "backend-client-secret"
	oaR2PW      = "r2-client-secret"
	oaIssuer    = "http://gateway.test:8081"
)

// oauthKeyFile writes a new EdDSA signing key.
func oauthKeyFile(t *testing.T) string {
	t.Helper()
	pem, err := oauth.GenerateKeyPEM("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "oauth-key.pem", string(pem))
}

// oauthYAML is a configuration with OAuth2 on realm1 (users alice and bob,
// a device client and a backend client) and realm2; more is appended to
// realm1's oauth: block.
func oauthYAML(t *testing.T, issuer, keyFile, dataDir, realm1OAuth string) string {
	dd := ""
	if dataDir != "" {
		dd = "data_dir: " + dataDir + "\n"
	}
	return `listeners: [{address: "127.0.0.1:0"}]
` + dd + `oauth:
  issuer: ` + issuer + `
  key_files: [` + keyFile + `]
realms:
  - name: realm1
    users:
      - {authid: alice, roles: [user, admin], password: "` + mustHash(t, oaAlicePW) + `"}
      - {authid: bob, role: viewer, password: "` + mustHash(t, oaBobPW) + `"}
    oauth:
      device_poll_interval: 1s
` + realm1OAuth + `      clients:
        - {id: device, name: Thermostat, public: true, grants: [device_code, refresh_token]}
        - {id: backend, secret: "` + mustHash(t, oaBackendPW) + `", roles: [service], grants: [client_credentials, password, refresh_token]}
  - name: realm2
    oauth:
      clients:
        - {id: r2, secret: "` + mustHash(t, oaR2PW) + `", roles: [svc], grants: [client_credentials]}
`
}

// issuer is an OAuth2 server built from a configuration by cmd's own code
// (startOAuth, realmConfigsWith), its endpoints on a test HTTP server
// standing in for the gateway's listener.
type issuer struct {
	t     *testing.T
	cfg   *config
	oa    *oauthServer
	url   string
	http  *httptest.Server
	realm map[string]route.RealmConfig
}

func startIssuer(t *testing.T, yml string) *issuer {
	t.Helper()
	cfg, err := parseConfig([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	oa, err := cfg.startOAuth(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	realms, err := cfg.realmConfigsWith(oa)
	if err != nil {
		t.Fatal(err)
	}
	oa.users.set(realms)
	is := &issuer{t: t, cfg: cfg, oa: oa, http: httptest.NewServer(oa.server().Handler()), realm: map[string]route.RealmConfig{}}
	is.url = is.http.URL
	for _, r := range realms {
		is.realm[r.Name] = r
	}
	t.Cleanup(func() { is.http.Close(); oa.close() })
	return is
}

func (is *issuer) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	is.t.Cleanup(cancel)
	return ctx
}

// cc is a client_credentials token.
func (is *issuer) cc(id, secret string) string {
	is.t.Helper()
	return ccAt(is.t, is.url, id, secret)
}

// ccAt is a client_credentials token from the server at base.
func ccAt(t *testing.T, base, id, secret string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: base + "/oauth/token"}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// deviceFlow runs the device flow to its end: the device (x/oauth2) asks
// for a code and polls; a person signs in on the page and approves.
func (is *issuer) deviceFlow(user, pw string) *oauth2.Token {
	is.t.Helper()
	return deviceFlowAt(is.t, is.url, user, pw)
}

// deviceFlowAt runs the device flow against the server at base (client
// "device"), the person approving through the page's form over HTTP.
func deviceFlowAt(t *testing.T, base, user, pw string) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &oauth2.Config{ClientID: "device", Endpoint: oauth2.Endpoint{
		TokenURL: base + "/oauth/token", DeviceAuthURL: base + "/oauth/device_authorization", AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan res, 1)
	go func() {
		tok, err := cfg.DeviceAccessToken(ctx, da)
		ch <- res{tok, err}
	}()
	if st, page := approveOnPage(t, base, da.UserCode, user, pw); st != 200 || !strings.Contains(page, "signed in as "+user) {
		t.Fatalf("device approval: %d\n%s", st, page)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.tok
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// approveOnPage is a person on the verification page: open it with the
// code, sign in, approve.
func approveOnPage(t *testing.T, base, userCode, user, pw string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(base + "/oauth/device?user_code=" + url.QueryEscape(userCode))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"username": {user}, "password": {pw}, "action": {"approve"}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&#43;", "+"))
	}
	req, _ := http.NewRequest("POST", base+"/oauth/device", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// tampered flips a bit of a token's signature.
func tampered(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
	sig[0] ^= 1
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// algNone re-encodes a token's claims under {"alg":"none"} with its kid.
func algNone(tok string) string {
	parts := strings.Split(tok, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(hb, &h)
	h["alg"] = "none"
	nh, _ := json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(nh) + "." + parts[1] + "."
}

func authURI(err error) string {
	var ae *route.AuthError
	if errors.As(err, &ae) {
		return ae.URI
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestTokenVerifierMapsRefusals(t *testing.T) {
	key := oauthKeyFile(t)
	is := startIssuer(t, oauthYAML(t, oaIssuer, key, "", ""))
	short := startIssuer(t, oauthYAML(t, oaIssuer, key, "", "      access_token_lifetime: 1s\n"))
	other := startIssuer(t, oauthYAML(t, "http://other.test", key, "", ""))
	v := tokenVerifier{is.oa}

	dev := is.deviceFlow("alice", oaAlicePW)
	svc := is.cc("backend", oaBackendPW)
	expiring := short.cc("backend", oaBackendPW)
	r2 := is.cc("r2", oaR2PW)
	foreign := other.cc("backend", oaBackendPW)
	revoked := is.cc("backend", oaBackendPW)
	// exp is rounded up to the second (so that a token lives its expires_in):
	// a 1 s token lives up to 2 s.
	time.Sleep(2100 * time.Millisecond) // expiring expires
	form := url.Values{"token": {revoked}}
	req, _ := http.NewRequest("POST", is.url+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", oaBackendPW)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}

	for _, tc := range []struct {
		name                   string
		realm, authid, role, t string
		want                   *route.Identity
		uri                    string
	}{
		{"device token", "realm1", "", "", dev.AccessToken, &route.Identity{AuthID: "alice", AuthRole: "user", AuthProvider: "jwt"}, ""},
		{"authid and another role", "realm1", "alice", "admin", dev.AccessToken, &route.Identity{AuthID: "alice", AuthRole: "admin", AuthProvider: "jwt"}, ""},
		{"service token", "realm1", "", "", svc, &route.Identity{AuthID: "backend", AuthRole: "service", AuthProvider: "jwt"}, ""},
		{"role not in the token", "realm1", "", "service", dev.AccessToken, nil, proto.URINoSuchRole},
		{"other principal", "realm1", "bob", "", dev.AccessToken, nil, proto.URIAuthenticationDenied},
		{"other realm", "realm1", "", "", r2, nil, proto.URIAuthenticationDenied},
		{"realm1 token on realm2", "realm2", "", "", svc, nil, proto.URIAuthenticationDenied},
		{"expired", "realm1", "", "", expiring, nil, proto.URIAuthenticationDenied},
		{"revoked", "realm1", "", "", revoked, nil, proto.URIAuthenticationDenied},
		{"tampered", "realm1", "", "", tampered(svc), nil, proto.URIAuthenticationFailed},
		{"alg none", "realm1", "", "", algNone(svc), nil, proto.URIAuthenticationFailed},
		{"other issuer", "realm1", "", "", foreign, nil, proto.URIAuthenticationFailed},
		{"garbage", "realm1", "", "", "eyJhbGciOi.x.y", nil, proto.URIAuthenticationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.verify(tc.realm, tc.authid, tc.role, tc.t)
			if tc.want != nil {
				if err != nil || id.AuthID != tc.want.AuthID || id.AuthRole != tc.want.AuthRole || id.AuthProvider != tc.want.AuthProvider {
					t.Fatalf("got %+v %v, want %+v", id, err, tc.want)
				}
				return
			}
			if got := authURI(err); got != tc.uri {
				t.Fatalf("got %q (%v), want %s", got, err, tc.uri)
			}
		})
	}
	// The route.TokenVerifier form: no role asked, the token's first role.
	if id, err := v.VerifyTicket(&route.AuthRequest{Realm: "realm1", AuthID: "alice"}, dev.AccessToken); err != nil || id.AuthRole != "user" {
		t.Fatalf("VerifyTicket: %+v %v", id, err)
	}
}

// route.TicketAuth with OAuth2 tokens: a JWT ticket is a token, anything
// else a static password.
func TestJWTTicketAndPasswords(t *testing.T) {
	is := startIssuer(t, oauthYAML(t, oaIssuer, oauthKeyFile(t), "", ""))
	var ticket route.Authenticator
	for _, a := range is.realm["realm1"].Authenticators {
		if a.Method() == "ticket" {
			ticket = a
		}
	}
	if ta, ok := ticket.(*route.TicketAuth); !ok || ta.Tokens == nil {
		t.Fatalf("realm1's ticket authenticator is %T (%+v), want *route.TicketAuth with Tokens", ticket, ticket)
	}
	if is.realm["realm1"].Anonymous {
		t.Fatal("a realm with OAuth2 allows anonymous by default")
	}
	tok := is.deviceFlow("alice", oaAlicePW)
	auth := func(authid, ticketStr string) (*route.Identity, error) {
		req := &route.AuthRequest{Realm: "realm1", AuthID: authid}
		extra, st, _, err := ticket.Challenge(req)
		if err != nil || extra == nil {
			t.Fatalf("challenge: %v %v", extra, err)
		}
		return ticket.Authenticate(req, st, ticketStr, nil)
	}
	// alice has a password: her token is still taken as a token.
	if id, err := auth("alice", tok.AccessToken); err != nil || id.AuthProvider != "jwt" {
		t.Fatalf("alice with a token: %+v %v", id, err)
	}
	if id, err := auth("alice", oaAlicePW); err != nil || id.AuthProvider != "static" || id.AuthRole != "user" {
		t.Fatalf("alice with her password: %+v %v", id, err)
	}
	if _, err := auth("alice", "wrong"); authURI(err) != proto.URIAuthenticationFailed {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := auth("", "not-a-jwt"); authURI(err) != proto.URINoSuchPrincipal {
		t.Fatalf("no authid and no token: %v", err)
	}
	// The user store adapter: the same PBKDF2 hashes, unknown users and
	// wrong passwords alike refused.
	u := is.oa.users
	if roles, ok := u.Authenticate("realm1", "bob", oaBobPW); !ok || len(roles) != 1 || roles[0] != "viewer" {
		t.Fatalf("bob: %v %v", roles, ok)
	}
	for _, c := range [][3]string{{"realm1", "bob", "x"}, {"realm1", "mallory", oaBobPW}, {"realm2", "bob", oaBobPW}, {"nope", "bob", oaBobPW}} {
		if _, ok := u.Authenticate(c[0], c[1], c[2]); ok {
			t.Errorf("Authenticate%v succeeded", c)
		}
	}
	if _, ok := u.Roles("realm1", "mallory"); ok {
		t.Error("Roles of an unknown user")
	}
}

func TestOAuthConfigErrors(t *testing.T) {
	key := oauthKeyFile(t)
	const hashPW = "pbkdf2-sha256$100000$32$0wIjr8Jx2IEjxYVpzdqkUQ$oTRavZt7KyAcaGvuUOAkwfpO3YtgDVJzmtS1agwFseU="
	base := func(realmOAuth string) string {
		return "listeners: [{address: \"127.0.0.1:0\"}]\noauth:\n  key_files: [" + key + "]\nrealms:\n  - name: realm1\n    security: true\n    roles: [{name: user}]\n    oauth:\n" + realmOAuth
	}
	for _, tc := range []struct {
		name, yml string
		want      []string
	}{
		{"unknown key", base("      clients: []\n      lifetime: 5m\n"), []string{"line 10", "lifetime"}},
		{"client errors", base("      clients:\n        - {id: a}\n        - {id: b, public: true, grants: [client_credentials]}\n        - {id: c, public: true, roles: [ghost]}\n        - {id: d, secret_env: EDGEWAMP_TEST_NOPE}\n"),
			[]string{`client "a": needs a secret hash`, `"b": a public client cannot use client_credentials`, `oauth client "c" has role "ghost"`, "EDGEWAMP_TEST_NOPE is empty"}},
		{"client named as a user", "listeners: [{address: \"127.0.0.1:0\"}]\noauth:\n  key_files: [" + key + "]\nrealms:\n  - name: realm1\n    security: true\n    roles: [{name: user}]\n    users: [{authid: svc, role: user, password: \"" + hashPW + "\"}]\n    oauth:\n      clients:\n        - {id: svc, secret: \"" + hashPW + "\", roles: [user]}\n",
			[]string{`line 11: oauth client "svc" has the authid of a user of realm "realm1"`}},
		{"huge secret iterations", base("      clients:\n        - {id: svc, secret: \"pbkdf2-sha256$2000000000$32$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\", roles: [user]}\n"),
			[]string{`line 10: oauth client "svc": secret: 2000000000 PBKDF2 iterations; at most 10000000`}},
		{"bad grant and lifetime", base("      grants: [implicit]\n      access_token_lifetime: 48h\n      clients: [{id: x, public: true}]\n"), []string{`unknown grant "implicit"`, "outside 1s..24h"}},
		{"bad key file", "listeners: [{address: \"127.0.0.1:0\"}]\noauth:\n  key_files: [/nonexistent.pem]\n  algorithm: RS256\nrealms:\n  - name: realm1\n    oauth: {clients: []}\n",
			[]string{"line 3: oauth.key_files[0]", "oauth.algorithm must be EdDSA or ES256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yml), nil)
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
	// A good one parses; check-config says ok.
	p := writeFile(t, "ok.yaml", oauthYAML(t, oaIssuer, key, t.TempDir(), ""))
	var out, errb strings.Builder
	if code := run([]string{"check-config", p}, &out, &errb); code != 0 {
		t.Fatalf("check-config: %d %s", code, errb.String())
	}
}

// The oauth helpers: a client secret whose hash the server accepts, and a
// key file it loads.
func TestOAuthHelpers(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"oauth", "secret", "-iterations", "1000"}, &out, &errb); code != 0 {
		t.Fatalf("oauth secret: %d %s", code, errb.String())
	}
	m := regexp.MustCompile(`client_secret: (\S+)\n[^\n]*\nsecret: "([^"]+)"`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	key := oauthKeyFile(t)
	yml := oauthYAML(t, oaIssuer, key, "", "")
	is := startIssuer(t, strings.Replace(yml, "grants: [client_credentials]}\n", "grants: [client_credentials]}\n        - {id: gen, secret: \""+m[2]+"\", roles: [svc], grants: [client_credentials]}\n", 1))
	if tok := is.cc("gen", m[1]); tok == "" {
		t.Fatal("no token with the generated secret")
	}
	out.Reset()
	if code := run([]string{"oauth", "keygen", "-alg", "ES256"}, &out, &errb); code != 0 {
		t.Fatalf("oauth keygen: %d", code)
	}
	kf := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(kf, []byte(out.String()), 0o600)
	if _, err := loadKeyFile(kf); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"oauth", "keygen", "-alg", "RS256"}, &out, &errb); code != 2 {
		t.Fatalf("keygen RS256: %d", code)
	}
}

// data_dir: the state and the generated key survive a restart of the
// server cmd builds (startOAuth). One process at a time holds the
// directory.
func TestOAuthDataDirRestart(t *testing.T) {
	dir := t.TempDir()
	yml := strings.Replace(oauthYAML(t, oaIssuer, "x", dir, ""), "  key_files: [x]\n", "", 1) // a generated key
	is := startIssuer(t, yml)
	cfg := &oauth2.Config{ClientID: "backend", ClientSecret: oaBackendPW, Endpoint: oauth2.Endpoint{TokenURL: is.url + "/oauth/token"}}
	tok, err := cfg.PasswordCredentialsToken(is.ctx(), "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	jwks := string(is.oa.server().JWKS())
	if _, err := os.Stat(filepath.Join(dir, "oauth", "oauth.log")); err != nil {
		t.Fatalf("no state under data_dir: %v", err)
	}
	// A second server on the same data_dir is refused while the first runs.
	c2, _ := parseConfig([]byte(yml), nil)
	if _, err := c2.startOAuth(slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on one data_dir: %v", err)
	}
	is.http.Close()
	is.oa.close()

	is2 := startIssuer(t, yml)
	if got := string(is2.oa.server().JWKS()); got != jwks {
		t.Fatalf("the generated key changed across the restart")
	}
	if _, err := is2.oa.server().VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("a token from before the restart: %v", err)
	}
	cfg.Endpoint.TokenURL = is2.url + "/oauth/token"
	t2, err := cfg.TokenSource(is2.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("a refresh token from before the restart: %v", err)
	}
	if id, err := (tokenVerifier{is2.oa}).verify("realm1", "", "", t2.AccessToken); err != nil || id.AuthID != "alice" {
		t.Fatalf("WAMP identity of the refreshed token: %+v %v", id, err)
	}
}

// A crash or power loss in the middle of a write leaves the OAuth2
// state's last record incomplete: the store cuts it off at the next start
// and the router says so (a warning naming the file and the bytes), since
// the change it held (a token issued or revoked at that moment) is lost.
// Before, it was cut off without a word. A clean state says nothing.
func TestOAuthTornStateRecordLogged(t *testing.T) {
	dir := t.TempDir()
	yml := strings.Replace(oauthYAML(t, oaIssuer, "x", dir, ""), "  key_files: [x]\n", "", 1)
	start := func() string {
		t.Helper()
		cfg, err := parseConfig([]byte(yml), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		oa, err := cfg.startOAuth(slog.New(slog.NewTextHandler(&out, nil)))
		if err != nil {
			t.Fatal(err)
		}
		oa.close()
		return out.String()
	}
	if logs := start(); strings.Contains(logs, "incomplete") {
		t.Fatalf("a new state: %s", logs)
	}
	path := filepath.Join(dir, "oauth", "oauth.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","k":"rt.x","v":"Y`)
	f.Close()
	logs := start()
	if !strings.Contains(logs, "level=WARN msg=\"oauth: the state's last record was incomplete") || !strings.Contains(logs, "bytes=29") || !strings.Contains(logs, path) {
		t.Fatalf("a torn last record: no warning naming the file and its 29 bytes:\n%s", logs)
	}
	if logs := start(); strings.Contains(logs, "incomplete") {
		t.Fatalf("the state after the cut: %s", logs)
	}
}

// TestOAuthTimingsBounded: oauth.sync_interval and oauth.rotate_every
// took any period, and check-config said ok: sync_interval: 1ms kept an
// idle router at 78 % of a CPU re-reading its OAuth2 state (on a mesh its
// rounds missed their 4 ms deadline), rotate_every: 1s generated a key a
// second, each kept for as long as its tokens live. Below 100 ms and 1 h
// they are refused, naming the key; 0 is still the default.
func TestOAuthTimingsBounded(t *testing.T) {
	const realm = "realms: [{name: r, oauth: {clients: [{id: c, public: true}]}}]\n"
	for _, k := range []struct{ body, want string }{
		{"oauth:\n  sync_interval: 1ms\n" + realm, "line 2: oauth.sync_interval 1ms is below the minimum 100ms"},
		{"oauth:\n  rotate_every: 1s\n" + realm, "line 2: oauth.rotate_every 1s is below the minimum 1h"},
		{"oauth:\n  sync_interval: 100ms\n  rotate_every: 1h\n" + realm, ""},
		{"oauth:\n  sync_interval: 0s\n  rotate_every: 0s\n" + realm, ""},
	} {
		_, e, code := runCLI("check-config", writeFile(t, "c.yaml", k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("%q: exit %d, %q; want %q", k.body, code, e, k.want)
		}
	}
}
