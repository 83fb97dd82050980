//go:build !nomesh

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/oauth"
)

// fillUsers is an oauth.UserStore of alice, and of as many users
// "fill<n>" as a test needs (one user's authorization codes are bounded
// on their own), all with alice's password.
type fillUsers struct{}

func (fillUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	ok, _ := fillUsers{}.Roles(realm, authid)
	return []string{"user"}, ok != nil && password == "alice-password"
}

func (fillUsers) Roles(realm, authid string) ([]string, bool) {
	ok := realm == "realm1" && (authid == "alice" || strings.HasPrefix(authid, "fill"))
	if !ok {
		return nil, false
	}
	return []string{"user"}, true
}

// Device authorizations need no secret (a public client's id is printed
// on every device) and store two records each for the code's lifetime,
// about 555 bytes in the mesh's bucket. Each node bounds what it issues
// (600 a minute: 3.3 to 6.7 MB held), but the bucket is the mesh's, 64
// MiB for every node together: ten to twenty nodes' budgets filled it,
// and then every write of every node failed (no login, no refresh, no
// revocation: HTTP 503) until the codes expired. Here a bucket of 128
// KiB stands for the 64 MiB and one node for the mesh: device
// authorizations are refused once it is half full, and a user's login,
// which writes its refresh-token family, still goes through.
func TestDeviceAuthorizationsLeaveRoomInTheMeshStore(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "hub")
	var store kvStore
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		kv, err := nodes[0].KV(ctx, edge.KVOptions{Name: "devicefill", MaxBytes: 128 << 10})
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
	realms := []oauth.Realm{{Name: "realm1", Clients: []oauth.Client{
		{ID: "device", Public: true, Grants: []string{oauth.GrantDeviceCode, oauth.GrantRefreshToken}},
		{ID: "cli", Public: true, Grants: []string{oauth.GrantPassword, oauth.GrantRefreshToken}},
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
	// Device authorizations until refused (the bucket holds about 236).
	granted := 0
	for i := range 400 {
		st, body := post("/oauth/device_authorization", url.Values{"client_id": {"device"}})
		if st == http.StatusOK {
			granted++
			continue
		}
		t.Logf("device authorization %d refused: %d %v", i, st, body)
		break
	}
	used, limit, err := store.Usage(context.Background())
	t.Logf("%d device authorizations granted; the bucket holds %d of %d bytes", granted, used, limit)
	if err != nil {
		t.Fatal(err)
	}
	// alice signs in: her login's records are written.
	st, body := post("/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice-password"}})
	if st != http.StatusOK || body["refresh_token"] == nil {
		t.Fatalf("a user's login after %d device authorizations: %d %v", granted, st, body)
	}
}
