package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A genuine access token issued ahead of the router's clock by more than
// the skew allowed (30 s: the system clock stepped back after it was
// issued, or a mesh node whose clock leads issued it) is refused until the
// clock reaches its iat. It was refused as an invalid token,
// wamp.error.authentication_failed on the WAMP port and 401 on the
// gateway, and counted as a failed authentication, as a forgery is: a
// device reconnecting with it ten times locked its authid out at its
// address (the fresh token it got meanwhile refused too), and 30 requests
// of a dashboard locked its address out of the gateway. It is refused as a
// genuine token that may not be used yet (authentication_denied; 401),
// not counted.
func TestTokenIssuedAheadNotCountedAsFailure(t *testing.T) {
	t.Parallel()
	key := oauthKeyFile(t)
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: %s
  key_files: [%s]
realms:
  - name: realm1
    security: true
    roles:
      - name: service
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [publish]}]
    oauth:
      clients:
        - {id: backend, secret: %q, roles: [service], grants: [client_credentials]}
gateway:
  listen: 127.0.0.1:0
  routes:
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}
`, oaIssuer, key, mustHash(t, oaBackendPW))
	g := startGatewayRouter(t, "-config", writeFile(t, "ahead.yaml", yml))
	now := time.Now()
	ahead := signAccessToken(t, key, map[string]any{
		"iss": oaIssuer, "sub": "backend", "aud": "realm1", "client_id": "backend", "roles": []string{"service"},
		"jti": "ahead-1", "iat": now.Add(5 * time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	for i := range 12 { // past block_after (10)
		s, err := ticketLoginAt(g.addr, ahead)
		if err == nil {
			s.Close()
			t.Fatalf("login %d with a token issued 5 minutes ahead welcomed", i+1)
		}
		if wampURI(err) != proto.URIAuthenticationDenied {
			t.Fatalf("login %d with a token issued 5 minutes ahead: %v, want %s", i+1, err, proto.URIAuthenticationDenied)
		}
	}
	fresh := ccAt(t, g.base, "backend", oaBackendPW)
	s, err := ticketLoginAt(g.addr, fresh)
	if err != nil {
		t.Fatalf("a fresh token after the logins with one issued ahead: %v, want a session", err)
	}
	s.Close()
	for i := range 35 { // past gateway.limits.auth_failures (30 a minute)
		r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", "Bearer "+ahead)
		if r.StatusCode != 401 {
			t.Fatalf("request %d with a token issued 5 minutes ahead: %d %s, want 401", i+1, r.StatusCode, body)
		}
		if i == 0 && !strings.Contains(string(body), "ahead") {
			t.Errorf("the 401 does not say why: %s", body)
		}
	}
	if r, body := g.do(t, "POST", "/news", `{"args":[2]}`, "Authorization", "Bearer "+fresh); r.StatusCode != 202 {
		t.Fatalf("a fresh token after the requests with one issued ahead: %d %s, want 202", r.StatusCode, body)
	}
}
