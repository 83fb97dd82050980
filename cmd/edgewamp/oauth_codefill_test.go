//go:build !nomesh

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/oauth"
)

// Authorization codes are stored (ac.<hash>) for their minute and the
// collection grace, 11 minutes, however many one signed-in user asks
// for: each sign-in on the authorization page is one more, and nothing
// counted them. One user's sign-ins in a loop filled the mesh's shared
// bucket (64 MiB for every node), and then every OAuth2 write of every
// node failed: no login, no refresh, no revocation (HTTP 503), for as
// long as the codes lived. Here a bucket of 128 KiB stands for the 64 MiB
// and one node for the mesh: codes are refused once it is three quarters
// full (device authorizations stop at half, so that anonymous ones never
// block a signed-in user's code), and another user's login, which writes
// its refresh-token family, still goes through, as does a refresh. The
// device authorizations asked first (up to half) do not refuse the codes.
func TestAuthorizationCodesLeaveRoomInTheMeshStore(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "hub")
	var store kvStore
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		kv, err := nodes[0].KV(ctx, edge.KVOptions{Name: "codefill", MaxBytes: 128 << 10})
		cancel()
		if err == nil {
			store = kvStore{kv}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	const redirect = "http://127.0.0.1:9/cb"
	realms := []oauth.Realm{{Name: "realm1", Clients: []oauth.Client{
		{ID: "web", Public: true, Grants: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}, RedirectURIs: []string{redirect}},
		{ID: "cli", Public: true, Grants: []string{oauth.GrantPassword, oauth.GrantRefreshToken}},
		{ID: "device", Public: true, Grants: []string{oauth.GrantDeviceCode, oauth.GrantRefreshToken}},
	}}}
	srv, err := oauth.New(oauth.Options{Issuer: "http://127.0.0.1:8081", Realms: realms, Store: store, Users: fillUsers{},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		AuthLimits: oauth.AuthLimits{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func(path string, form url.Values) (int, map[string]any) {
		resp, err := http.Post(hs.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	// A login made before: its refresh must still work after.
	st, body := post("/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice-password"}})
	if st != http.StatusOK || body["refresh_token"] == nil {
		t.Fatalf("the first login: %d %v", st, body)
	}
	rt := body["refresh_token"].(string)

	// Anonymous device authorizations fill their half first: they do not
	// refuse a signed-in user's code.
	devices := 0
	for range 400 {
		if st, _ := post("/oauth/device_authorization", url.Values{"client_id": {"device"}}); st != http.StatusOK {
			break
		}
		devices++
	}
	// alice signs in on the authorization page over and over.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirect},
		"code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}, "state": {"s"}}
	resp, err := browser.Get(hs.URL + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorization page: %d\n%s", resp.StatusCode, page)
	}
	f := url.Values{"csrf_token": {string(m[1])}, "username": {"alice"}, "password": {"alice-password"}, "action": {"approve"}}
	for k, v := range q {
		f[k] = v
	}
	codes := 0
	for i := range 1000 {
		// Users of their own, 8 sign-ins each: one user's codes are
		// bounded (10 within 90 s) before the store's fill.
		f.Set("username", "fill"+strconv.Itoa(i/8))
		resp, err := browser.PostForm(hs.URL+"/oauth/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "code=") {
			codes++
			continue
		}
		t.Logf("sign-in %d refused: %d", i, resp.StatusCode)
		if i == 0 {
			t.Fatalf("after %d device authorizations, alice's first sign-in: %d, want a code", devices, resp.StatusCode)
		}
		break
	}
	used, limit, err := store.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d device authorizations, then %d authorization codes issued; the bucket holds %d of %d bytes", devices, codes, used, limit)
	// The earlier login refreshes, and a new one is made.
	st, body = post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"cli"}, "refresh_token": {rt}})
	if st != http.StatusOK {
		t.Fatalf("a refresh after %d authorization codes: %d %v", codes, st, body)
	}
	st, body = post("/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice-password"}})
	if st != http.StatusOK || body["refresh_token"] == nil {
		t.Fatalf("a login after %d authorization codes: %d %v", codes, st, body)
	}
}
