package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The device flow and the authorization code flow, with x/oauth2 as the
// client and the page driven by a cookie-keeping HTTP client (the real
// browser is in browser_test.go).

func TestDeviceFlow(t *testing.T) {
	// The real clock: x/oauth2 polls in real time.
	e := startEnv(t, func(o *Options) { o.Realms[0].DevicePollInterval = time.Second; o.now = time.Now })
	cfg := e.config("device", "", "read")
	da, err := cfg.DeviceAuth(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(da.UserCode) != 9 || da.UserCode[4] != '-' || da.VerificationURI != e.url+"/oauth/device" ||
		da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode || da.Interval != 1 || time.Until(da.Expiry) < 9*time.Minute {
		t.Fatalf("device authorization %+v", da)
	}
	done := make(chan struct{})
	var tok *oauth2.Token
	var perr error
	go func() {
		defer close(done)
		tok, perr = cfg.DeviceAccessToken(e.ctx(), da)
	}()
	time.Sleep(1500 * time.Millisecond) // a poll or two: authorization_pending
	b := newBrowser(t)
	// The user types the code in lower case without the dash: accepted.
	st, page := e.approveDevice(b, strings.ToLower(strings.ReplaceAll(da.UserCode, "-", "")), "alice", alicePW, "approve")
	if st != 200 || !strings.Contains(page, "Thermostat is signed in as alice") {
		t.Fatalf("approval: %d\n%s", st, page)
	}
	<-done
	if perr != nil {
		t.Fatal(perr)
	}
	c, err := e.srv.VerifyAccessToken(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.ClientID != "device" || !slices.Equal(c.Roles, []string{"user", "admin"}) || !slices.Equal(c.Scopes, []string{"read"}) || tok.RefreshToken == "" {
		t.Fatalf("device token claims %+v, refresh %q", c, tok.RefreshToken)
	}
	e.verifyThirdParty(tok.AccessToken, "realm1", "EdDSA")
	// The public device client refreshes with its client_id alone.
	if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// The code is redeemed once.
	st2, body := e.token(url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}, "client_id": {"device"}}, "", "")
	wantOAuthError(t, st2, body, 400, "invalid_grant")
	// The user code is gone too.
	if resp, page := b.get(e.url + "/oauth/device?user_code=" + da.UserCode); resp.StatusCode != 400 || !strings.Contains(page, "not valid or has expired") {
		t.Fatalf("used user code: %d", resp.StatusCode)
	}
	e.checkLogs(tok.AccessToken, tok.RefreshToken, da.DeviceCode)
	if strings.Contains(e.logs.String(), "slow_down") {
		t.Error("x/oauth2 polling at the given interval got slow_down")
	}
}

// devicePoll polls once.
func (e *testEnv) devicePoll(dc string) (int, map[string]any) {
	return e.token(url.Values{"grant_type": {deviceGrantType}, "device_code": {dc}, "client_id": {"device"}}, "", "")
}

// TestDevicePollJitter: x/oauth2 polls on a fixed-rate ticker, so a poll
// held up on its way is followed by one that comes early by as much. With
// a tenth of the interval of slack (500 ms at the default 5 s), a poll
// delayed by 600 ms made the next one slow_down, and the device's
// interval grew by 5 s for the rest of the flow. Now the slack is a
// second; a poll a second and a half early is still too fast.
func TestDevicePollJitter(t *testing.T) {
	e := startEnv(t, nil)
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 || da["interval"] != float64(5) {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	st, body := e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
	e.clock.Advance(5*time.Second + 600*time.Millisecond) // held up
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
	e.clock.Advance(4*time.Second + 400*time.Millisecond) // the next tick, on time
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
	e.clock.Advance(3500 * time.Millisecond) // 1.5 s early: too fast
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "slow_down")
	for _, c := range []struct{ interval, slack int64 }{{1, 500}, {5, 1000}, {10, 1000}, {30, 3000}} {
		if got := pollSlack(c.interval); got != c.slack {
			t.Errorf("pollSlack(%d) = %d ms, want %d", c.interval, got, c.slack)
		}
	}
}

func TestDeviceFlowRefused(t *testing.T) {
	e := startEnv(t, nil)
	start := func() map[string]any {
		st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		if st != 200 {
			t.Fatalf("device authorization: %d %v", st, da)
		}
		return da
	}
	// Polling too fast: slow_down, and the interval grows by 5 s each time
	// (RFC 8628 §3.5); polling at the new interval is pending again.
	da := start()
	dc := da["device_code"].(string)
	st, body := e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "slow_down")
	e.clock.Advance(6 * time.Second)
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "slow_down") // 6 s < 5+5 s
	e.clock.Advance(15 * time.Second)
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending") // 15 s >= 15 s
	// After expiry: expired_token, approval impossible.
	e.clock.Advance(DefaultDeviceCodeLifetime)
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "expired_token")
	if st, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "alice", alicePW, "approve"); st != 400 || !strings.Contains(page, "expired") {
		t.Fatalf("approving an expired code: %d", st)
	}
	// Denied by the user: access_denied, once.
	da = start()
	dc = da["device_code"].(string)
	if st, page := e.approveDevice(newBrowser(t), da["user_code"].(string), "", "", "deny"); st != 200 || !strings.Contains(page, "denied") {
		t.Fatalf("deny: %d %s", st, page)
	}
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "access_denied")
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "invalid_grant")
	// Wrong password on the page: the page says so and the code stays
	// pending; another client cannot poll the code; unknown device code.
	da = start()
	dc = da["device_code"].(string)
	b := newBrowser(t)
	if st, page := e.approveDevice(b, da["user_code"].(string), "alice", "wrong", "approve"); st != 400 || !strings.Contains(page, "Wrong user name or password") {
		t.Fatalf("wrong password: %d %s", st, page)
	}
	e.clock.Advance(time.Minute)
	st, body = e.devicePoll(dc)
	wantOAuthError(t, st, body, 400, "authorization_pending")
	st, body = e.token(url.Values{"grant_type": {deviceGrantType}, "device_code": {dc}}, "backend", backendSec)
	wantOAuthError(t, st, body, 400, "unauthorized_client")
	st, body = e.devicePoll("no-such-code")
	wantOAuthError(t, st, body, 400, "invalid_grant")
	// Clients without the grant cannot start the flow.
	st, body = e.post("/oauth/device_authorization", url.Values{"client_id": {"cli"}}, "", "")
	wantOAuthError(t, st, body, 400, "unauthorized_client")
	// A wrong user code on the page counts as a failed authentication.
	n := len(e.recordedDelays())
	for i := 0; i < 4; i++ {
		if resp, page := b.get(e.url + "/oauth/device?user_code=BCDF-GHJK"); resp.StatusCode != 400 || !strings.Contains(page, "not valid") {
			t.Fatalf("unknown user code: %d", resp.StatusCode)
		}
	}
	if d := e.recordedDelays(); len(d) <= n {
		t.Fatalf("wrong user codes were not rate limited (delays %v)", d)
	}
}

// pkce returns a verifier and its S256 challenge.
func pkce() (string, string) {
	v := oauth2.GenerateVerifier()
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize runs the page part of the code flow: GET the authorization
// URL, sign in and approve; it returns the redirect's query.
func (e *testEnv) authorize(b *browser, authURL, user, pw, action string) (int, url.Values, string) {
	e.t.Helper()
	resp, page := b.get(authURL)
	if resp.StatusCode != 200 {
		if resp.StatusCode == http.StatusSeeOther {
			u, _ := url.Parse(resp.Header.Get("Location"))
			return resp.StatusCode, u.Query(), page
		}
		return resp.StatusCode, nil, page
	}
	f := formFields(page)
	f.Set("username", user)
	f.Set("password", pw)
	f.Set("action", action)
	resp, page = b.postForm(e.url+"/oauth/authorize", f)
	if resp.StatusCode != http.StatusSeeOther {
		return resp.StatusCode, nil, page
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, redirectURI+"?") && !strings.HasPrefix(loc, redirectURI2+"?") {
		e.t.Fatalf("redirect to %q", loc)
	}
	u, _ := url.Parse(loc)
	return resp.StatusCode, u.Query(), page
}

func TestAuthorizationCodePKCE(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("dashboard", "", "read", "write")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier))
	b := newBrowser(t)
	resp, page := b.get(authURL)
	if resp.StatusCode != 200 || !strings.Contains(page, "Plant dashboard") || !strings.Contains(page, "127.0.0.1:9") {
		t.Fatalf("authorization page: %d\n%s", resp.StatusCode, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "form-action 'self' http://127.0.0.1:9", "frame-ancestors 'none'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "style=") || strings.Contains(page, " on") && strings.Contains(page, "onclick") {
		t.Error("the page has a script, an inline style or an event handler")
	}
	st, q, _ := e.authorize(b, authURL, "bob", bobPW, "approve")
	if st != http.StatusSeeOther || q.Get("state") != "st4te" || q.Get("iss") != e.url || q.Get("code") == "" {
		t.Fatalf("approval redirect: %d %v", st, q)
	}
	tok, err := cfg.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.srv.VerifyAccessToken(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "bob" || c.ClientID != "dashboard" || !slices.Equal(c.Roles, []string{"viewer"}) || !slices.Equal(c.Scopes, []string{"read", "write"}) {
		t.Fatalf("claims %+v", c)
	}
	e.verifyThirdParty(tok.AccessToken, "realm1", "EdDSA")
	if _, err := refreshVia(e, cfg, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// The code is single use, and a second use revokes what the first got.
	if _, err := cfg.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier)); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("second exchange: %v", err)
	}
	if _, err := e.srv.VerifyAccessToken(tok.AccessToken); err != ErrTokenRevoked {
		t.Fatalf("token of a replayed code: %v, want revoked", err)
	}
	// Deny: back to the client with access_denied.
	st, q, _ = e.authorize(b, authURL, "", "", "deny")
	if st != http.StatusSeeOther || q.Get("error") != "access_denied" || q.Get("state") != "st4te" {
		t.Fatalf("deny: %d %v", st, q)
	}
	// A confidential web client exchanges with its secret.
	wcfg := e.config("confidential-web", dashSecret)
	v2 := oauth2.GenerateVerifier()
	_, q, _ = e.authorize(b, wcfg.AuthCodeURL("x", oauth2.S256ChallengeOption(v2)), "alice", alicePW, "approve")
	if _, err := wcfg.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(v2)); err != nil {
		t.Fatal(err)
	}
	e.checkLogs(tok.AccessToken, tok.RefreshToken, q.Get("code"))
}

func TestAuthorizationCodeRefused(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("dashboard", "")
	b := newBrowser(t)
	code := func(verifier, redirect string) string {
		t.Helper()
		c := *cfg
		c.RedirectURL = redirect
		_, q, page := e.authorize(b, c.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice", alicePW, "approve")
		if q.Get("code") == "" {
			t.Fatalf("no code: %v %s", q, page)
		}
		return q.Get("code")
	}
	// PKCE verifier mismatch: invalid_grant, and the code is burned.
	v := oauth2.GenerateVerifier()
	c := code(v, redirectURI)
	if _, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(oauth2.GenerateVerifier())); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("wrong verifier: %v", err)
	}
	if _, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v)); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("right verifier after a wrong one: %v (the code must be burned)", err)
	}
	// No verifier at all.
	c = code(v, redirectURI)
	if _, err := cfg.Exchange(e.ctx(), c); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("no verifier: %v", err)
	}
	// Redirect URI at the token endpoint differs from the authorization request.
	c = code(v, redirectURI2)
	if _, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v)); retrieveErr(err) != "invalid_grant" { // cfg says redirectURI
		t.Fatalf("redirect mismatch at the token endpoint: %v", err)
	}
	// An unregistered redirect URI, or a near miss of a registered one, is
	// refused on the page and never redirected to. (Another port of a
	// loopback IP one is no miss: RFC 8252 §7.3, TestLoopbackRedirectAnyPort.)
	for _, ru := range []string{"http://127.0.0.1:9/callback/", "http://127.0.0.1:9/callback?x=1", "http://evil.example/callback", "http://127.0.0.2:9/callback"} {
		_, ch := pkce()
		u := e.url + "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"dashboard"}, "redirect_uri": {ru},
			"code_challenge": {ch}, "code_challenge_method": {"S256"}}.Encode()
		resp, page := b.get(u)
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(page, "redirect_uri mismatch") {
			t.Fatalf("redirect_uri %q: %d %q", ru, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Unknown client: an error page.
	if resp, _ := b.get(e.url + "/oauth/authorize?client_id=ghost&response_type=code"); resp.StatusCode != 400 {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
	// Errors after the redirect URI is known go back to the client.
	_, ch := pkce()
	for _, tc := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"code_challenge": {ch}, "code_challenge_method": {"plain"}}, "invalid_request"},
		{url.Values{"code_challenge": {ch}}, "invalid_request"},
		{url.Values{"code_challenge_method": {"S256"}}, "invalid_request"},
		{url.Values{"code_challenge": {"short"}, "code_challenge_method": {"S256"}}, "invalid_request"},
		{url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}, "response_type": {"token"}}, "unsupported_response_type"},
		{url.Values{"code_challenge": {ch}, "code_challenge_method": {"S256"}, "scope": {"admin"}}, "invalid_scope"},
	} {
		q := url.Values{"response_type": {"code"}, "client_id": {"dashboard"}, "redirect_uri": {redirectURI}, "state": {"z"}}
		for k, v := range tc.q {
			q[k] = v
		}
		st, rq, _ := e.authorize(b, e.url+"/oauth/authorize?"+q.Encode(), "alice", alicePW, "approve")
		if st != http.StatusSeeOther || rq.Get("error") != tc.want || rq.Get("state") != "z" {
			t.Errorf("%v: %d %v, want a redirect with %s", tc.q, st, rq, tc.want)
		}
	}
	// Another client cannot redeem the code.
	c = code(v, redirectURI)
	st, body := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {c}, "code_verifier": {v}, "redirect_uri": {redirectURI}}, "confidential-web", dashSecret)
	wantOAuthError(t, st, body, 400, "invalid_grant")
	// A code expires after a minute.
	c = code(v, redirectURI)
	e.clock.Advance(61 * time.Second)
	if _, err := cfg.Exchange(e.ctx(), c, oauth2.VerifierOption(v)); retrieveErr(err) != "invalid_grant" {
		t.Fatalf("expired code: %v", err)
	}
	// Wrong password on the page: the page again, with the error.
	_, page := b.get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)))
	f := formFields(page)
	f.Set("username", "alice")
	f.Set("password", "wrong")
	f.Set("action", "approve")
	resp, page := b.postForm(e.url+"/oauth/authorize", f)
	if resp.StatusCode != 400 || !strings.Contains(page, "Wrong user name or password") || !strings.Contains(page, `value="alice"`) {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
}

// The page's POSTs need the CSRF cookie and token, and same-origin.
func TestPageCSRF(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("dashboard", "")
	_, ch := pkce()
	_ = ch
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	b := newBrowser(t)
	_, page := b.get(authURL)
	f := formFields(page)
	f.Set("username", "alice")
	f.Set("password", alicePW)
	f.Set("action", "approve")
	// Without the cookie (another browser), with a wrong token, and from
	// another site.
	other := newBrowser(t)
	if resp, _ := other.postForm(e.url+"/oauth/authorize", f); resp.StatusCode != 403 {
		t.Fatalf("POST without the CSRF cookie: %d", resp.StatusCode)
	}
	bad := url.Values{}
	for k, v := range f {
		bad[k] = v
	}
	bad.Set("csrf_token", "x"+f.Get("csrf_token")[1:])
	if resp, _ := b.postForm(e.url+"/oauth/authorize", bad); resp.StatusCode != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", e.url+"/oauth/authorize", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site POST: %d", resp.StatusCode)
	}
	// The real one passes.
	if resp, _ := b.postForm(e.url+"/oauth/authorize", f); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST with cookie and token: %d", resp.StatusCode)
	}
	// Pages are not framed, sniffed or cached; the cookie is HttpOnly and
	// SameSite=Strict.
	resp, _ = newBrowser(t).get(authURL)
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("cookie %q", sc)
	}
}
