//go:build !nomesh

package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/oauth"
)

// raceUsers is one user with a plain password (no hashing: the test is
// about the store).
type raceUsers struct{}

func (raceUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	return []string{"user"}, realm == "realm1" && authid == "alice" && password == "pw"
}
func (raceUsers) Roles(realm, authid string) ([]string, bool) {
	return []string{"user"}, realm == "realm1" && authid == "alice"
}

// TestMeshLoginRevokedWhileRefreshedElsewhere: a login (refresh-token
// family) revoked on node A while its refresh token is being refreshed on
// node B stays revoked, whichever comes first: the refresh token the
// refresh may have answered with no longer works. Before, the family's
// deletion (a subject purge in the mesh's JetStream bucket) and the
// refresh's rotation (an update from the revision the purge removed) could
// both succeed, the rotation bringing the family back: the revoked login
// refreshed on, its access tokens refused only while its grant's
// revocation lasted (edge.KV.Delete).
func TestMeshLoginRevokedWhileRefreshedElsewhere(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "a", "b", "c")
	stores := kvStores(t, nodes)
	secret, err := oauth.HashSecret("BACKEND", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var base string
	var servers []*httptest.Server
	for i := range 2 {
		mux := http.NewServeMux()
		ts := httptest.NewServer(mux)
		t.Cleanup(ts.Close)
		if base == "" {
			base = ts.URL
		}
		srv, err := oauth.New(oauth.Options{
			Issuer: base, Store: stores[i], Users: raceUsers{}, SyncInterval: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Realms: []oauth.Realm{{Name: "realm1", Clients: []oauth.Client{{ID: "backend", SecretHash: secret, Roles: []string{"service"},
				Grants: []string{oauth.GrantPassword, oauth.GrantRefreshToken}}}}},
			AuthLimits: oauth.AuthLimits{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		mux.Handle("/", srv.Handler())
		servers = append(servers, ts)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	post := func(ts *httptest.Server, path string, form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("backend", "BACKEND")
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	a, b := servers[0], servers[1]
	const rounds = 20
	survived, raced := 0, 0
	for round := range rounds {
		st, body := post(a, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}})
		rt0, _ := body["refresh_token"].(string)
		if st != 200 || rt0 == "" {
			t.Fatalf("round %d: password grant: %d %v", round, st, body)
		}
		var wg sync.WaitGroup
		var revSt, refSt int
		var refBody map[string]any
		wg.Add(2)
		go func() {
			defer wg.Done()
			revSt, _ = post(a, "/oauth/revoke", url.Values{"token": {rt0}, "token_type_hint": {"refresh_token"}})
		}()
		go func() {
			defer wg.Done()
			refSt, refBody = post(b, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}})
		}()
		wg.Wait()
		if revSt != 200 {
			t.Fatalf("round %d: the revocation on a: %d", round, revSt)
		}
		rt1, _ := refBody["refresh_token"].(string)
		if refSt != 200 || rt1 == "" {
			continue // the revocation came first
		}
		raced++
		if st, body := post(b, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}); st == 200 {
			survived++
			t.Errorf("round %d: the login revoked on a while b refreshed it refreshes on (%v)", round, body["refresh_token"] != nil)
		}
	}
	t.Logf("%d rounds, %d refreshed before the revocation took", rounds, raced)
	if survived > 0 {
		t.Errorf("%d of %d revoked logins lived on", survived, rounds)
	}
}
