//go:build !nomesh

package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/oauth"
)

// One address gets 30 device authorizations a minute (README), on a mesh
// too: its nodes count them in the store they share. Before, each node
// counted its own, so an address whose requests a load balancer spread
// over two nodes got 60 a minute (30 on each), over N nodes 30 × N. Here
// two nodes of a cluster, each with its OAuth2 server on the mesh's
// bucket, take one address's requests in turn.
func TestMeshDeviceAuthorizationsPerAddress(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "a", "b")
	stores := kvStores(t, nodes)
	realms := []oauth.Realm{{Name: "realm1", Clients: []oauth.Client{
		{ID: "device", Public: true, Grants: []string{oauth.GrantDeviceCode, oauth.GrantRefreshToken}},
	}}}
	var urls []string
	for _, st := range stores {
		srv, err := oauth.New(oauth.Options{Issuer: "http://127.0.0.1:8081", Realms: realms, Store: st, Users: fillUsers{},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		hs := httptest.NewServer(srv.Handler())
		t.Cleanup(hs.Close)
		urls = append(urls, hs.URL)
	}
	granted, refused := [2]int{}, 0
	for i := range 80 {
		resp, err := http.Post(urls[i%2]+"/oauth/device_authorization", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"client_id": {"device"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			granted[i%2]++
		case resp.StatusCode == http.StatusTooManyRequests && body["error"] == "slow_down":
			refused++
		default:
			t.Fatalf("device authorization %d on node %d: %d %v", i, i%2, resp.StatusCode, body)
		}
	}
	t.Logf("granted %d on node a, %d on node b; %d refused", granted[0], granted[1], refused)
	if n := granted[0] + granted[1]; n != 30 {
		t.Fatalf("one address got %d device authorizations within a minute from two nodes (%d and %d), want 30 (README: one address gets 30 a minute)",
			n, granted[0], granted[1])
	}
}
