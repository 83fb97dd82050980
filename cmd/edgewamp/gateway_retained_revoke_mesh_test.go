//go:build !nomesh

package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// TestGatewayRetainedDroppedWhenTokenRevokedOnAnotherNode: on a mesh of
// two binaries sharing the OAuth2 state, a retained event published
// through node a's gateway with a bearer token is dropped, on a and from
// b's copy, when the token is revoked at b's /oauth/revoke (a learns it
// at its next sync); the event of another login of the same user stays
// on both. Before, it stayed on both for as long as a ran.
func TestGatewayRetainedDroppedWhenTokenRevokedOnAnotherNode(t *testing.T) {
	yml := `oauth:
  issuer: http://mesh.oauth.test
  sync_interval: 1s
` + retainedBearerYAML[strings.Index(retainedBearerYAML, "realms:"):]
	yml = strings.NewReplacer("ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW)).Replace(yml)
	path := writeFile(t, "mesh-retained-bearer.yaml", yml)
	gws := []string{edgetest.FreeAddr(t), edgetest.FreeAddr(t)}
	ps := processCluster(t, func(i int) []string { return []string{"-config", path, "-gateway-listen", gws[i]} }, "a", "b")
	var bins []*oauthBin
	for i, p := range ps {
		b := &oauthBin{router: p.router, base: "http://" + gws[i], hc: &http.Client{Timeout: 30 * time.Second}}
		b.waitReady(t)
		bins = append(bins, b)
	}
	a, b := bins[0], bins[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conf := a.oauth2Config("backend", oaBackendPW)
	revoked, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := conf.PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	publishRetainedWith(t, a, "com.example.revoked", revoked.AccessToken)
	publishRetainedWith(t, a, "com.example.kept", kept.AccessToken)
	for _, n := range bins {
		meshEventuallyRetained(t, n.addr, "com.example.revoked", true)
		meshEventuallyRetained(t, n.addr, "com.example.kept", true)
	}

	if st, body := b.post(t, "/oauth/revoke", url.Values{"token": {revoked.AccessToken}}, "backend", oaBackendPW); st != 200 {
		t.Fatalf("revocation on b: %d %v", st, body)
	}
	for _, n := range bins {
		meshEventuallyRetained(t, n.addr, "com.example.revoked", false)
	}
	for _, n := range bins {
		if !retainedAt(t, n.addr, "com.example.kept", 5*time.Second) {
			t.Errorf("the retained event of another login of alice was dropped at %s", n.addr)
		}
	}
	if t.Failed() {
		for i, n := range bins {
			t.Logf("node %d log (tail):\n%s", i, tail(n.logs(), 20))
		}
	}
}
