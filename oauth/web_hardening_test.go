package oauth

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A web attacker's page, opened by someone whose network also holds
// devices and services that use this server, makes the visitor's browser
// send requests here. They must not count against the visitor's address.

// crossSite sends req as a browser on https://evil.example would: a
// no-cors fetch, or a subresource, or a form.
func crossSite(t *testing.T, c *http.Client, req *http.Request, mode, dest string) (int, string) {
	t.Helper()
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", mode)
	req.Header.Set("Sec-Fetch-Dest", dest)
	if req.Method == http.MethodPost {
		req.Header.Set("Origin", "https://evil.example")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A cross-site page sends no-cors POSTs to the token endpoint (a simple
// request: no preflight) with wrong credentials. Before the fix each
// counted as a failed authentication of the visitor's address: a dozen
// locked the visitor's whole network (a plant behind one NAT) out of every
// token endpoint for five minutes, and the page could renew it at will; the
// delays of failures from the fourth on also gave the page a timing oracle
// to guess passwords through its visitors' browsers.
func TestCrossSiteTokenRequestsCountNothing(t *testing.T) {
	e := startEnv(t, nil)
	for i := 0; i < 12; i++ {
		form := url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"guess" + itoa(int64(i))}}
		req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		crossSite(t, e.hc, req, "no-cors", "empty")
	}
	for i := 0; i < 12; i++ {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"backend"}, "client_secret": {"guess"}}
		req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		crossSite(t, e.hc, req, "no-cors", "empty")
	}
	// Device authorizations (30 a minute per address) likewise.
	for i := 0; i < 31; i++ {
		req, _ := http.NewRequest("POST", e.url+"/oauth/device_authorization", strings.NewReader("client_id=device"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		crossSite(t, e.hc, req, "no-cors", "empty")
	}
	// The backend and a thermostat on the same network then ask for theirs.
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != http.StatusOK {
		t.Fatalf("a client on the visitor's network after a cross-site page's requests: %d %v", st, body)
	}
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != http.StatusOK {
		t.Fatalf("a device on the visitor's network after a cross-site page's requests: %d %v", st, body)
	}
	if d := e.recordedDelays(); len(d) != 0 {
		t.Fatalf("cross-site requests were delayed as failures: %v", d)
	}
	// A registered browser client's origin is still served (CORS).
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"dashboard"}, "refresh_token": {"x"}}
	if resp := e.postFrom(t, "/oauth/token", form.Encode(), "http://127.0.0.1:9", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 400 || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:9" {
		t.Fatalf("registered origin: %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// A cross-site page embeds <img src="/oauth/device?user_code=..."> a dozen
// times. Before the fix each GET looked the code up and counted the miss
// against the visitor's address: the page locked the visitor's network out
// of the device page, the sign-in page and the token endpoint.
func TestCrossSiteDevicePageLookupsCountNothing(t *testing.T) {
	e := startEnv(t, nil)
	for i := 0; i < 12; i++ {
		req, _ := http.NewRequest("GET", e.url+"/oauth/device?user_code=BCDF-GHJ"+string(userCodeAlphabet[i]), nil)
		crossSite(t, e.hc, req, "no-cors", "image")
	}
	// HEAD is a CORS-safelisted method too: fetch(u, {method: "HEAD", mode: "no-cors"}).
	for i := 0; i < 12; i++ {
		req, _ := http.NewRequest("HEAD", e.url+"/oauth/device?user_code=BCDF-GHJ"+string(userCodeAlphabet[i]), nil)
		crossSite(t, e.hc, req, "no-cors", "empty")
		req, _ = http.NewRequest("HEAD", e.url+"/oauth/device", nil)
		crossSite(t, e.hc, req, "no-cors", "empty")
	}
	st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
	if st != http.StatusOK {
		t.Fatalf("a client on the visitor's network after a cross-site page's image requests: %d %v", st, body)
	}
	// A real code opened from another site gets the code form filled in
	// (one click to continue, from this origin); opened from a QR code or
	// typed (Sec-Fetch-Site: none), or by a non-browser, the approval page.
	_, dev := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	uc := dev["user_code"].(string)
	req, _ := http.NewRequest("GET", e.url+"/oauth/device?user_code="+uc, nil)
	if st, page := crossSite(t, e.hc, req, "navigate", "document"); st != 200 || !strings.Contains(page, `value="`+uc+`"`) || strings.Contains(page, "csrf_token") {
		t.Fatalf("cross-site link to a real code: %d\n%s", st, page)
	}
	for _, site := range []string{"none", "same-origin", ""} {
		req, _ := http.NewRequest("GET", e.url+"/oauth/device?user_code="+uc, nil)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "csrf_token") || !strings.Contains(string(b), "Thermostat") {
			t.Fatalf("Sec-Fetch-Site %q: %d\n%s", site, resp.StatusCode, b)
		}
	}
}

// The device approval page asks the person to compare the code with the
// one their device shows (RFC 8628 §3.3.1: a link with the code in it,
// verification_uri_complete, can be sent by someone else, whose device
// the person would otherwise approve).
func TestDeviceApprovalAsksToCompareTheCode(t *testing.T) {
	e := startEnv(t, nil)
	_, dev := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	uc := dev["user_code"].(string)
	resp, err := e.hc.Get(e.url + "/oauth/device?user_code=" + uc)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != 200 || !strings.Contains(page, "csrf_token") {
		t.Fatalf("approval page: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `id="check-code"`) || !strings.Contains(page, "Check that your device shows this code") {
		t.Fatalf("the approval page does not ask to compare the code with the device's:\n%s", page)
	}
}
