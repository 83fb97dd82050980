//go:build !nomesh

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// OAuth2 across a mesh of three edgewamp processes (real binaries, their
// embedded NATS servers clustered, the OAuth2 state in the JetStream
// bucket edgewamp_oauth): one login, its token issued on A, refreshed on
// B, revoked on C, and the revocation seen on every node.

const meshOAuthYAML = `oauth:
  issuer: http://mesh.oauth.test
  sync_interval: 1s
realms:
  - name: realm1
    users:
      - {authid: alice, roles: [user], password: "ALICE"}
    oauth:
      clients:
        - {id: backend, secret: "BACKEND", roles: [service], grants: [client_credentials, password, refresh_token]}
`

// meshOAuthNode is a mesh process with its gateway (the OAuth2 endpoints).
type meshOAuthNode struct {
	*meshProc
	b *oauthBin
}

// introspect asks node n whether token is active, as the confidential
// client backend.
func (n *meshOAuthNode) introspect(t *testing.T, token string) (bool, error) {
	t.Helper()
	st, body := n.b.post(t, "/oauth/introspect", url.Values{"token": {token}}, "backend", oaBackendPW)
	if st != 200 {
		return false, fmt.Errorf("introspection on %s: %d %v", n.name, st, body)
	}
	return body["active"] == true, nil
}

func (n *meshOAuthNode) refresh(t *testing.T, rt string) (*oauth2.Token, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.b.oauth2Config("backend", oaBackendPW).TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
}

func TestOAuthMeshBinary(t *testing.T) {
	t.Parallel()
	yml := strings.NewReplacer("ALICE", mustHash(t, oaAlicePW), "BACKEND", mustHash(t, oaBackendPW)).Replace(meshOAuthYAML)
	path := writeFile(t, "mesh-oauth.yaml", yml)
	gws := []string{edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)}
	ps := processCluster(t, func(i int) []string { return []string{"-config", path, "-gateway-listen", gws[i]} }, "a", "b", "c")
	var nodes []*meshOAuthNode
	for i, p := range ps {
		b := &oauthBin{router: p.router, base: "http://" + gws[i], hc: &http.Client{Timeout: 30 * time.Second}}
		b.waitReady(t) // the shared bucket answers on this node
		nodes = append(nodes, &meshOAuthNode{p, b})
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	_, jwksA := a.b.get(t, "/.well-known/jwks.json")
	for _, n := range nodes[1:] {
		if _, jwks := n.b.get(t, "/.well-known/jwks.json"); jwks != jwksA {
			t.Fatalf("node %s publishes another key set than a:\n%s\n%s", n.name, jwks, jwksA)
		}
	}
	if !strings.Contains(a.logs(), `state="the mesh's shared store"`) {
		t.Fatalf("node a does not keep its OAuth2 state in the mesh:\n%s", tail(a.logs(), 20))
	}

	// Issued on A (password grant: a login with a refresh token).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t1, err := a.b.oauth2Config("backend", oaBackendPW).PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatalf("password grant on a: %v", err)
	}
	// It verifies on every node, over HTTP and WAMP.
	sessions := map[string]*client.Session{}
	for _, n := range nodes {
		if ok, err := n.introspect(t, t1.AccessToken); err != nil || !ok {
			t.Fatalf("a's token is not active on %s: %v", n.name, err)
		}
		s, err := ticketLoginAt(n.addr, t1.AccessToken)
		if err != nil {
			t.Fatalf("WAMP login with a's token on %s: %v", n.name, err)
		}
		if s.Details()["authid"] != "alice" || s.Details()["authprovider"] != "jwt" {
			t.Fatalf("WELCOME on %s: %v", n.name, s.Details())
		}
		defer s.Close()
		sessions[n.name] = s
	}

	// Refreshed on B: a new pair; the old refresh token is rotated out.
	t2, err := b.refresh(t, t1.RefreshToken)
	if err != nil {
		t.Fatalf("refreshing a's refresh token on b: %v", err)
	}
	if t2.RefreshToken == t1.RefreshToken || t2.AccessToken == t1.AccessToken {
		t.Fatal("the refresh on b did not rotate the tokens")
	}
	s2, err := ticketLoginAt(a.addr, t2.AccessToken)
	if err != nil {
		t.Fatalf("WAMP login on a with the token refreshed on b: %v", err)
	}
	defer s2.Close()

	// Revoked on C: the refresh token, and with it the whole login (every
	// access token of it).
	if st, body := c.b.post(t, "/oauth/revoke", url.Values{"token": {t2.RefreshToken}, "token_type_hint": {"refresh_token"}}, "backend", oaBackendPW); st != 200 {
		t.Fatalf("revocation on c: %d %v", st, body)
	}
	revokedAt := time.Now()

	// Seen everywhere: the live sessions end, the refresh fails, the
	// tokens introspect inactive, and new WAMP logins are refused.
	for name, s := range map[string]*client.Session{"a(t1)": sessions["a"], "b(t1)": sessions["b"], "c(t1)": sessions["c"], "a(t2)": s2} {
		select {
		case <-s.Done():
			if uri := wampURI(s.Err()); uri != proto.CloseKilled {
				t.Errorf("session %s ended with %v, want GOODBYE %s", name, s.Err(), proto.CloseKilled)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("session %s still up 15 s after the revocation on c", name)
		}
	}
	t.Logf("every live session of the login ended %v after the revocation on another node", time.Since(revokedAt).Round(time.Millisecond))
	for _, n := range nodes {
		if _, err := n.refresh(t, t2.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("refreshing the revoked login on %s: %v, want invalid_grant", n.name, err)
		}
		if _, err := n.refresh(t, t1.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("refreshing the rotated-out token on %s: %v, want invalid_grant", n.name, err)
		}
		for i, tok := range []string{t1.AccessToken, t2.AccessToken} {
			meshEventually(t, 10*time.Second, func() error {
				if ok, err := n.introspect(t, tok); err != nil || ok {
					return fmt.Errorf("access token %d still active on %s (%v)", i+1, n.name, err)
				}
				return nil
			})
			s, err := ticketLoginAt(n.addr, tok)
			if err == nil {
				s.Close()
				t.Errorf("WAMP login on %s with revoked access token %d accepted", n.name, i+1)
			} else if uri := wampURI(err); uri != proto.URIAuthenticationDenied {
				t.Errorf("WAMP login on %s with revoked access token %d: %v, want %s", n.name, i+1, err, proto.URIAuthenticationDenied)
			}
		}
	}
	// The mesh still issues: a new login on C verifies on A.
	t3, err := c.b.oauth2Config("backend", oaBackendPW).PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := ticketLoginAt(a.addr, t3.AccessToken)
	if err != nil {
		t.Fatalf("a new login after the revocation: %v", err)
	}
	s3.Close()
	if t.Failed() {
		for _, n := range nodes {
			t.Logf("node %s log (tail):\n%s", n.name, tail(n.logs(), 30))
		}
	}
}
