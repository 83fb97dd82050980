package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Test fixtures: a Server on a real loopback HTTP listener (httptest),
// realm1 with these users and clients, a fake clock, and a log buffer the
// tests search for leaked secrets.

const (
	alicePW      = "alice-password-1"
	bobPW        = "bob-password-2"
	backendSec   = "backend-secret-0123456789"
	dashSecret   = "dash-secret-abcdef"
	redirectURI  = "http://127.0.0.1:9/callback"
	redirectURI2 = "http://127.0.0.1:9/other"
)

// fakeClock is an adjustable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testUsers is a UserStore of cleartext passwords (the PBKDF2 users are
// cmd's adapter, tested there).
type testUsers struct {
	mu    sync.Mutex
	users map[string]map[string]testUser // realm → authid → user
}

type testUser struct {
	pw    string
	roles []string
}

func newTestUsers() *testUsers {
	return &testUsers{users: map[string]map[string]testUser{
		"realm1": {
			"alice": {alicePW, []string{"user", "admin"}},
			"bob":   {bobPW, []string{"viewer"}},
		},
		"realm2": {"carol": {"carol-pw", []string{"user"}}},
	}}
}

func (u *testUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x, ok := u.users[realm][authid]
	if !ok || x.pw != password {
		return nil, false
	}
	return x.roles, true
}

func (u *testUsers) Roles(realm, authid string) ([]string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	x, ok := u.users[realm][authid]
	return x.roles, ok
}

func (u *testUsers) remove(realm, authid string) {
	u.mu.Lock()
	delete(u.users[realm], authid)
	u.mu.Unlock()
}

// hashFor hashes a secret with few iterations (tests run fast).
func hashFor(t testing.TB, secret string) string {
	h, err := HashSecret(secret, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testRealms is realm1 with four clients and realm2 with one.
func testRealms(t testing.TB) []Realm {
	return []Realm{
		{
			Name: "realm1",
			Clients: []Client{
				{ID: "backend", SecretHash: hashFor(t, backendSec), Roles: []string{"service"}, Scopes: []string{"read", "write"},
					Grants: []string{GrantClientCredentials, GrantPassword, GrantRefreshToken}},
				{ID: "device", Name: "Thermostat", Public: true, Grants: []string{GrantDeviceCode, GrantRefreshToken}, Scopes: []string{"read"}},
				{ID: "dashboard", Name: "Plant dashboard", Public: true, RedirectURIs: []string{redirectURI, redirectURI2},
					Grants: []string{GrantAuthorizationCode, GrantRefreshToken}, Scopes: []string{"read", "write"}},
				{ID: "confidential-web", SecretHash: hashFor(t, dashSecret), RedirectURIs: []string{redirectURI}},
				{ID: "cli", Public: true, Grants: []string{GrantPassword}},
			},
		},
		{
			Name:    "realm2",
			Clients: []Client{{ID: "r2", SecretHash: hashFor(t, "r2-secret"), Roles: []string{"svc"}, Grants: []string{GrantClientCredentials, GrantPassword, GrantRefreshToken}}},
		},
	}
}

// testEnv is a running server.
type testEnv struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	url   string
	clock *fakeClock
	users *testUsers
	logs  *syncBuffer
	store Store
	hc    *http.Client // from a loopback address of its own (the rate limiter counts per address)

	mu     sync.Mutex
	delays []time.Duration // the rate limiter's delays (not slept unless realSleep)
}

var nextSource atomic.Uint32

// sourceClient is an HTTP client whose connections come from a loopback
// address no other client of this test process uses (127.0.0.0/8 is all
// loopback on Linux), so that rate limiting per address is per client.
func sourceClient() *http.Client {
	n := nextSource.Add(1)
	ip := net.IPv4(127, byte(1+n/65536%250), byte(n/256), byte(n))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 60 * time.Second}
}

// fresh gives the env's client a new source address.
func (e *testEnv) fresh() { e.hc = sourceClient() }

func (e *testEnv) recordedDelays() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.delays)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startEnv starts a server; mod may change the options before New.
func startEnv(t *testing.T, mod func(*Options)) *testEnv {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: t, clock: newFakeClock(), users: newTestUsers(), logs: &syncBuffer{}, hc: sourceClient()}
	env.url = "http://" + l.Addr().String()
	opts := Options{
		Issuer: env.url, Realms: testRealms(t), Users: env.users,
		Logger: slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		now:    env.clock.Now,
		sleep: func(_ context.Context, d time.Duration) {
			env.mu.Lock()
			env.delays = append(env.delays, d)
			env.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&opts)
	}
	if opts.Store == nil {
		opts.Store = newMemStore(env.clock.Now)
	}
	env.store = opts.Store
	env.srv, err = New(opts)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	env.http = &httptest.Server{Listener: l, Config: &http.Server{Handler: env.srv.Handler()}}
	env.http.Start()
	t.Cleanup(func() {
		env.http.Close()
		env.srv.Close()
		env.checkLogs()
	})
	return env
}

// secretsInLogs are values that must never reach a log line.
var secretsInLogs = []string{alicePW, bobPW, backendSec, dashSecret}

// checkLogs fails the test when a secret or a token appears in the log.
func (e *testEnv) checkLogs(extra ...string) {
	logs := e.logs.String()
	for _, s := range append(secretsInLogs, extra...) {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("a secret or token (%.12q…) appears in the log", s)
		}
	}
	if m := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`).FindString(logs); m != "" {
		e.t.Errorf("a JWT appears in the log: %.20s…", m)
	}
}

func (e *testEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return context.WithValue(ctx, oauth2.HTTPClient, e.hc)
}

// config is an x/oauth2 config for a client of this server. A public
// client sends its client_id in the form: x/oauth2's default (auto-detect)
// retries every failed request with the other style, which turns each
// authorization_pending poll of the device flow into two requests, the
// second of them slow_down.
func (e *testEnv) config(id, secret string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleAutoDetect
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: id, ClientSecret: secret, Scopes: scopes, RedirectURL: redirectURI,
		Endpoint: oauth2.Endpoint{
			AuthURL: e.url + "/oauth/authorize", TokenURL: e.url + "/oauth/token",
			DeviceAuthURL: e.url + "/oauth/device_authorization", AuthStyle: style,
		},
	}
}

// post sends a form to path and decodes the JSON answer.
func (e *testEnv) post(path string, form url.Values, basicID, basicSecret string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			e.t.Fatalf("POST %s: %d, body %q is not JSON", path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, m
}

// token runs a token request and returns status and body.
func (e *testEnv) token(form url.Values, id, secret string) (int, map[string]any) {
	e.t.Helper()
	return e.post("/oauth/token", form, id, secret)
}

// wantOAuthError checks an error response.
func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Fatalf("got %d %v, want %d error %q", status, body, wantStatus, wantCode)
	}
}

// retrieveErr returns x/oauth2's error code, or "".
func retrieveErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// browser is a minimal form-submitting user agent with cookies (the
// chromedp test drives a real one).
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Transport: sourceClient().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) postForm(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// formFields returns the hidden fields of a page.
func formFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+")
	return r.Replace(s)
}

// approveDevice signs in on the device page and approves userCode.
func (e *testEnv) approveDevice(b *browser, userCode, user, pw, action string) (int, string) {
	e.t.Helper()
	resp, page := b.get(e.url + "/oauth/device?user_code=" + url.QueryEscape(userCode))
	if resp.StatusCode != 200 {
		return resp.StatusCode, page
	}
	f := formFields(page)
	f.Set("username", user)
	f.Set("password", pw)
	f.Set("action", action)
	resp, page = b.postForm(e.url+"/oauth/device", f)
	return resp.StatusCode, page
}

// cliToken gets an access token of the public "cli" client
// (password grant, no refresh token: the token has no gid).
func (e *testEnv) cliToken(user, pw string) string {
	e.t.Helper()
	st, body := e.token(url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {user}, "password": {pw}}, "", "")
	if st != 200 {
		e.t.Fatalf("password grant for %s: %d %v", user, st, body)
	}
	return body["access_token"].(string)
}

// postFrom POSTs the encoded form body to e's path as a browser page of
// origin would (an Origin header, and hdr's name-value pairs), and returns
// the answer, its body read and closed.
func (e *testEnv) postFrom(t *testing.T, path, body, origin string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// longScopes is 70 scope tokens of 120 characters each: a client allowed
// them all is issued an access token past maxTokenLen.
func longScopes() []string {
	var scopes []string
	for i := range 70 {
		scopes = append(scopes, fmt.Sprintf("s%03d-%s", i, strings.Repeat("x", 115)))
	}
	return scopes
}
