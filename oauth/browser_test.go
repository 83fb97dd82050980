package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// The login and approval page in a real browser: headless Chromium
// (Debian's chromium package) driven through the DevTools protocol by
// chromedp. A person's steps: open the verification URI of a device code,
// sign in, approve; open a dashboard's authorization URL, sign in,
// approve, land on the dashboard's callback with a code. On failure the
// page's screenshot is saved in the test's artifact directory (go test
// -artifacts keeps it) and its path logged.

// chromium returns the browser's path, or skips (fails under
// EDGEWAMP_REQUIRE_INTEROP).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EDGEWAMP_REQUIRE_INTEROP") != "" {
		t.Fatal("chromium is not installed and EDGEWAMP_REQUIRE_INTEROP is set (.ci/setup installs it)")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// newChrome starts a fresh headless Chromium for one test.
func newChrome(t *testing.T) context.Context {
	path := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root in a container
		chromedp.Flag("disable-gpu", true),
		// Without these Chromium reaches for the network (component
		// updates, sync, variations) and stalls on this closed one.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(800, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// fail saves a screenshot of the page in the test's artifact directory,
// logs where, and fails the test.
func failChrome(t *testing.T, ctx context.Context, step string, err error) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if shot, serr := chromedp.Run(sctx, chromedp.FullScreenshot(90)); serr == nil {
		p := filepath.Join(t.ArtifactDir(), strings.ReplaceAll(step, " ", "_")+".jpg")
		if os.WriteFile(p, shot, 0o644) == nil {
			t.Logf("screenshot of the page: %s", p)
		}
	}
	loc, _ := chromedp.Run(sctx, chromedp.Location())
	text, _ := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s: %v (at %s)\npage text: %s", step, err, loc, text)
}

// do runs browser steps, failing with a screenshot.
func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		failChrome(t, ctx, step, err)
	}
}

// get reads a value from the page, failing with a screenshot.
func get[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		failChrome(t, ctx, step, err)
	}
	return v
}

func TestBrowserDeviceApproval(t *testing.T) {
	e := startEnv(t, nil)
	ctx := newChrome(t)
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}, "scope": {"read"}}, "", "")
	if st != 200 {
		t.Fatal(st, da)
	}
	userCode := da["user_code"].(string)
	// The person types the code by hand on the bare verification URI.
	do(t, ctx, "enter the code",
		chromedp.Navigate(da["verification_uri"].(string)),
		chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), strings.ToLower(userCode)),
		chromedp.Submit(chromedp.ID("user_code")),
		chromedp.WaitVisible(chromedp.ID("username")),
	)
	if h := get(t, ctx, "heading", chromedp.Text(chromedp.CSS("h1"))); h != "Approve a device" {
		t.Fatalf("heading %q", h)
	}
	body := get(t, ctx, "read the request", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(body, "Thermostat") || !strings.Contains(body, userCode) || !strings.Contains(body, "read") {
		failChrome(t, ctx, "request shown", fmt.Errorf("the page does not show the client, code and scope:\n%s", body))
	}
	// A wrong password first: the page says so.
	do(t, ctx, "wrong password",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if msg := get(t, ctx, "error text", chromedp.Text(chromedp.ID("error"))); !strings.Contains(msg, "Wrong user name or password") {
		failChrome(t, ctx, "error text", fmt.Errorf("error %q", msg))
	}
	do(t, ctx, "approve",
		chromedp.SendKeys(chromedp.ID("password"), alicePW),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if msg := get(t, ctx, "result", chromedp.Text(chromedp.ID("message"))); !strings.Contains(msg, "signed in as alice") {
		failChrome(t, ctx, "result", fmt.Errorf("message %q", msg))
	}
	st, tok := e.devicePoll(da["device_code"].(string))
	if st != 200 {
		t.Fatalf("poll after approval in the browser: %d %v", st, tok)
	}
	if c, err := e.srv.VerifyAccessToken(tok["access_token"].(string)); err != nil || c.Subject != "alice" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestBrowserAuthorizationCode(t *testing.T) {
	// The dashboard: its callback receives the code.
	got := make(chan url.Values, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case got <- r.URL.Query():
			default:
			}
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`<!DOCTYPE html><title>Dashboard</title><p id="landed">signed in</p>`))
			return
		}
		http.NotFound(w, r)
	}))
	defer app.Close()
	e := startEnv(t, func(o *Options) {
		o.Realms[0].Clients = append(o.Realms[0].Clients, Client{ID: "web", Name: "Web dashboard", Public: true,
			RedirectURIs: []string{app.URL + "/callback"}, Scopes: []string{"read"}})
	})
	ctx := newChrome(t)
	cfg := e.config("web", "", "read")
	cfg.RedirectURL = app.URL + "/callback"
	verifier := oauth2.GenerateVerifier()
	do(t, ctx, "sign in and approve",
		chromedp.Navigate(cfg.AuthCodeURL("xyz", oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "bob"),
		chromedp.SendKeys(chromedp.ID("password"), bobPW),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("landed")),
	)
	if landed := get(t, ctx, "location", chromedp.Location()); !strings.HasPrefix(landed, app.URL+"/callback?") {
		failChrome(t, ctx, "landing", fmt.Errorf("landed on %s", landed))
	}
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the callback was not called")
	}
	if q.Get("state") != "xyz" || q.Get("iss") != e.url {
		t.Fatalf("callback query %v", q)
	}
	tok, err := cfg.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.srv.VerifyAccessToken(tok.AccessToken); err != nil || c.Subject != "bob" || c.ClientID != "web" {
		t.Fatalf("%+v %v", c, err)
	}
	// Deny in the browser: back to the dashboard with access_denied.
	do(t, ctx, "deny",
		chromedp.Navigate(cfg.AuthCodeURL("abc", oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.ID("landed")),
	)
	select {
	case q = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the callback was not called after deny")
	}
	if q.Get("error") != "access_denied" || q.Get("state") != "abc" {
		t.Fatalf("deny callback %v", q)
	}
}
