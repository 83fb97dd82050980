package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// OAuth2 end to end through the built binary: its authorization server on
// the gateway's listener, a device driven by golang.org/x/oauth2, a person
// approving in headless Chromium, and Autobahn|Python sessions logging in
// with the tokens; then what revocation, expiry, a restart with data_dir
// and a reload do to them.

// oauthBin is a running binary whose gateway (and so OAuth2 issuer) is at
// base: the gateway's address is picked free before the start, so that the
// issuer in the configuration is the URL the device is sent to.
type oauthBin struct {
	*router
	base string
	hc   *http.Client
}

// startOAuthBin writes yml (with GATEWAY replaced by the gateway's
// host:port) and runs the binary on it.
func startOAuthBin(t *testing.T, yml string, extra ...string) (*oauthBin, string) {
	t.Helper()
	gw := edgetest.FreeAddr(t)
	path := writeFile(t, "oauth-e2e.yaml", strings.ReplaceAll(yml, "GATEWAY", gw))
	r := startRouter(t, append([]string{"-config", path, "-gateway-listen", gw}, extra...)...)
	b := &oauthBin{router: r, base: "http://" + gw, hc: &http.Client{Timeout: 30 * time.Second}}
	b.waitReady(t)
	return b, path
}

// waitReady waits until the authorization server answers (the JWKS).
func (b *oauthBin) waitReady(t *testing.T) {
	t.Helper()
	meshEventually(t, 30*time.Second, func() error {
		st, body := b.get(t, "/.well-known/jwks.json")
		if st != 200 {
			return fmt.Errorf("JWKS: %d %s", st, body)
		}
		return nil
	})
}

func (b *oauthBin) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := b.hc.Get(b.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form (with basic credentials when id is set) and decodes
// the JSON answer.
func (b *oauthBin) post(t *testing.T, path string, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && json.Unmarshal(body, &m) != nil {
		t.Fatalf("POST %s: %d, not JSON: %q", path, resp.StatusCode, body)
	}
	return resp.StatusCode, m
}

func (b *oauthBin) oauth2Config(clientID, secret string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: oauth2.Endpoint{
		TokenURL: b.base + "/oauth/token", DeviceAuthURL: b.base + "/oauth/device_authorization", AuthStyle: style}}
}

// chromeOrSkip starts a headless Chromium (Debian's chromium) for one
// test, or skips when there is none (fails under EDGEWAMP_REQUIRE_INTEROP).
func chromeOrSkip(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("EDGEWAMP_REQUIRE_INTEROP") != "" {
			t.Fatal("chromium is not installed and EDGEWAMP_REQUIRE_INTEROP is set (.ci/setup installs it)")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir()), chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(800, 900))
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// chromeStep runs browser actions; on failure it saves a screenshot in the
// test's artifact directory and fails with the page's text.
func chromeStep(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	err := chromedp.Do(ctx, actions...)
	if err == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if shot, serr := chromedp.Run(sctx, chromedp.FullScreenshot(90)); serr == nil {
		p := filepath.Join(t.ArtifactDir(), strings.ReplaceAll(step, " ", "_")+".jpg")
		if os.WriteFile(p, shot, 0o644) == nil {
			t.Logf("screenshot of the page: %s", p)
		}
	}
	text, _ := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s: %v\npage text: %s", step, err, text)
}

// approveInChrome is a person at the verification URI the device was
// given: types the code, signs in, approves.
func approveInChrome(t *testing.T, ctx context.Context, verificationURI, userCode, user, pw string) {
	t.Helper()
	chromeStep(t, ctx, "enter the code",
		chromedp.Navigate(verificationURI),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), userCode),
		chromedp.Submit(chromedp.ID("user_code")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message")))
	if err != nil || !strings.Contains(msg, "signed in as "+user) {
		t.Fatalf("approval page says %q (%v)", msg, err)
	}
}

// deviceFlow runs RFC 8628 against the binary: the device asks for a code,
// polls at once and again too fast (authorization_pending, then
// slow_down), a person approves (approve), and x/oauth2 polls to the end,
// honouring the interval and the slow_down.
func (b *oauthBin) deviceFlow(t *testing.T, approve func(verificationURI, userCode string)) *oauth2.Token {
	t.Helper()
	cfg := b.oauth2Config("device", "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.VerificationURI != b.base+"/oauth/device" || da.Interval < 1 {
		t.Fatalf("device authorization: %+v", da)
	}
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"device"}}
	if st, body := b.post(t, "/oauth/token", poll, "", ""); st != 400 || body["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v", st, body)
	}
	if st, body := b.post(t, "/oauth/token", poll, "", ""); st != 400 || body["error"] != "slow_down" {
		t.Fatalf("a poll faster than the interval: %d %v, want slow_down", st, body)
	}
	approve(da.VerificationURI, da.UserCode)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("x/oauth2 polling after approval: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("the device got no refresh token")
	}
	return tok
}

// tokenExp reads an access token's exp claim.
func tokenExp(t *testing.T, tok string) int64 {
	t.Helper()
	var c struct {
		Exp int64 `json:"exp"`
	}
	seg, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(seg, &c); err != nil {
		t.Fatal(err)
	}
	return c.Exp
}

const deviceE2EYAML = `listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://GATEWAY
  sync_interval: 1s
realms:
  - name: realm1
    users:
      - {authid: alice, roles: [user, admin], password: "ALICE"}
    oauth:
      access_token_lifetime: 10s
      device_poll_interval: 1s
      clients:
        - {id: device, name: Thermostat, public: true, grants: [device_code, refresh_token]}
gateway:
  listen: GATEWAY
`

// The device flow through the binary, and an Autobahn|Python session
// logging in with its token; revocation ends sessions at once and refuses
// the token; expiry refuses new logins but leaves the session up.
func TestOAuthDeviceFlowBinary(t *testing.T) {
	interopNeeds(t, "python")
	t.Parallel()
	b, _ := startOAuthBin(t, strings.ReplaceAll(deviceE2EYAML, "ALICE", mustHash(t, oaAlicePW)))
	chrome := chromeOrSkip(t)
	tok := b.deviceFlow(t, func(uri, code string) { approveInChrome(t, chrome, uri, code, "alice", oaAlicePW) })
	// A second access token of the same login (same gid), with the
	// rotated refresh token.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok2, err := b.oauth2Config("device", "").TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := json.Marshal(map[string]any{"t1": tok.AccessToken, "t2": tok2.AccessToken, "r2": tok2.RefreshToken,
		"t2_exp": tokenExp(t, tok2.AccessToken), "gateway": b.base, "client_id": "device"})
	ictx, icancel := context.WithTimeout(context.Background(), interopTimeout)
	defer icancel()
	p := authClient{"autobahn-py", "ws", "msgpack"}.proc(b.addr, "jwt-live")
	p.argv[len(p.argv)-1] = string(creds)
	r := &interopRun{p: p}
	if err := r.start(ictx); err != nil {
		t.Fatal(err)
	}
	<-r.exited
	reportInterop(t, r)
	logs := b.logs()
	for _, s := range []string{tok.AccessToken, tok.RefreshToken, tok2.AccessToken, tok2.RefreshToken, oaAlicePW} {
		if strings.Contains(logs, s) {
			t.Errorf("a token or password (%.10s…) appears in the router log", s)
		}
	}
	if n := strings.Count(logs, "its credential was revoked"); n != 2 {
		t.Errorf("the router logged %d sessions ended by revocation, want 2", n)
	}
	if t.Failed() {
		t.Logf("router log (tail):\n%s", tail(logs, 40))
	}
}

const restartYAML = `listeners: [{address: "127.0.0.1:0"}]
data_dir: DATADIR
oauth:
  issuer: http://restart.oauth.test
realms:
  - name: realm1
    users:
      - {authid: alice, roles: [user], password: "ALICE"}
    oauth:
      clients:
        - {id: backend, secret: "BACKEND", roles: [service], grants: [client_credentials, password, refresh_token]}
`

// A restart of the binary with data_dir: the generated signing key, the
// refresh tokens and the revocations issued before it are still there.
func TestOAuthDataDirRestartBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yml := strings.NewReplacer("DATADIR", dir, "ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW)).Replace(restartYAML)
	b, _ := startOAuthBin(t, yml)
	_, jwks := b.get(t, "/.well-known/jwks.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := b.oauth2Config("backend", oaBackendPW).PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := b.oauth2Config("backend", oaBackendPW).PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	if st, body := b.post(t, "/oauth/revoke", url.Values{"token": {gone.RefreshToken}}, "backend", oaBackendPW); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, tail(b.logs(), 20))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the router did not exit after SIGTERM")
	}

	b2, _ := startOAuthBin(t, yml) // the same configuration (its data_dir) on a new gateway port
	if _, j := b2.get(t, "/.well-known/jwks.json"); j != jwks {
		t.Fatalf("the key set changed across the restart:\n%s\n%s", jwks, j)
	}
	if !strings.Contains(b2.logs(), filepath.Join(dir, "oauth")) {
		t.Fatalf("the restarted router does not name its state directory:\n%s", tail(b2.logs(), 20))
	}
	// An access token from before the restart still logs in over WAMP.
	s, err := ticketLoginAt(b2.addr, tok.AccessToken)
	if err != nil {
		t.Fatalf("WAMP login with a token from before the restart: %v", err)
	}
	s.Close()
	// Its refresh token still refreshes over HTTP, and the new token logs in.
	t2, err := b2.oauth2Config("backend", oaBackendPW).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("a refresh token from before the restart: %v", err)
	}
	if s, err := ticketLoginAt(b2.addr, t2.AccessToken); err != nil {
		t.Fatalf("WAMP login with the token refreshed after the restart: %v", err)
	} else {
		s.Close()
	}
	// What was revoked stays revoked.
	if _, err := b2.oauth2Config("backend", oaBackendPW).TokenSource(ctx, &oauth2.Token{RefreshToken: gone.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("a refresh token revoked before the restart: %v, want invalid_grant", err)
	}
	if _, err := ticketLoginAt(b2.addr, gone.AccessToken); wampURI(err) != proto.URIAuthenticationDenied {
		t.Fatalf("WAMP login with an access token revoked before the restart: %v, want %s", err, proto.URIAuthenticationDenied)
	}
}

// ticketLoginAt joins realm1 at a router's WebSocket listener with an
// access token as the ticket.
func ticketLoginAt(addr, token string) (*client.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: proto.JSON,
		AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return token, nil, nil }})
}
