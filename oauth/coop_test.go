package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestPageIsolationHeaders: every answer of the login and approval pages
// (the page, its error pages, the CSRF and cross-origin refusals, the
// redirect back to the client) carries Cross-Origin-Opener-Policy and
// Cross-Origin-Resource-Policy same-origin with the other security
// headers.
func TestPageIsolationHeaders(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("dashboard", "")
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	b := newBrowser(t)
	check := func(what string, resp *http.Response) {
		t.Helper()
		for k, want := range map[string]string{
			"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin",
			"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s (%d): %s %q, want %q", what, resp.StatusCode, k, got, want)
			}
		}
	}
	resp, page := b.get(authURL)
	check("the authorization page", resp)
	resp, _ = b.get(e.url + "/oauth/authorize?client_id=nobody&response_type=code")
	if resp.StatusCode/100 != 4 {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
	check("an authorization error page", resp)
	resp, _ = b.get(e.url + "/oauth/device")
	check("the device page", resp)
	f := formFields(page)
	f.Set("username", "alice")
	f.Set("password", alicePW)
	f.Set("action", "approve")
	resp, _ = newBrowser(t).postForm(e.url+"/oauth/authorize", f)
	check("the CSRF refusal", resp)
	req, _ := http.NewRequest("POST", e.url+"/oauth/authorize", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := b.c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		check("the cross-origin refusal", resp)
	}
	resp, _ = b.postForm(e.url+"/oauth/authorize", f)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	check("the redirect to the client", resp)
}

// TestBrowserCrossOriginOpenerIsCut: a page of another origin (another
// loopback port) opens the authorization page with window.open. Without
// Cross-Origin-Opener-Policy the two stayed linked: the opener could
// navigate the window the person signs in with (to a look-alike page) and
// the page's window.opener pointed back at it. Now Chromium puts the page
// in a browsing context group of its own: the opener's handle reports the
// window closed, and nothing links the two.
func TestBrowserCrossOriginOpenerIsCut(t *testing.T) {
	e := startEnv(t, nil)
	cfg := e.config("dashboard", "")
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	opener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!DOCTYPE html><title>Opener</title>
<button id="open">Sign in</button><p id="state">idle</p>
<script>
var w = null;
document.getElementById("open").onclick = function () {
  w = window.open(` + jsString(authURL) + `, "login");
  document.getElementById("state").textContent = w ? "opened" : "blocked";
};
</script>`))
	}))
	defer opener.Close()
	if origin(opener.URL) == origin(e.url) {
		t.Fatal("the opener must be of another origin")
	}
	ctx := newChrome(t)
	do(t, ctx, "open the login window",
		chromedp.Navigate(opener.URL),
		chromedp.WaitVisible(chromedp.ID("open")),
		chromedp.Click(chromedp.ID("open")), // a click: not a blocked popup
	)
	if st := get(t, ctx, "state", chromedp.Text(chromedp.ID("state"))); st != "opened" {
		t.Fatalf("window.open: %s", st)
	}
	// The login window loads the page; once it has, the opener's handle
	// on it is cut (closed), for good.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if get(t, ctx, "the opener's handle", chromedp.Evaluate[bool](`w.closed`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the opener still holds the login window (window.closed is false): Cross-Origin-Opener-Policy did not cut it")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jsString quotes s as a JavaScript string literal (URL characters only).
func jsString(s string) string {
	u, _ := url.Parse(s)
	return `"` + strings.ReplaceAll(u.String(), `"`, `%22`) + `"`
}
