//go:build !nomesh

package main

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// A mesh node whose shared OAuth2 state does not answer yet (JetStream
// electing its leaders; here an edge node whose hub is unreachable) cannot
// tell whether a bearer token is good: README promises that token logins
// are then refused as temporary. The gateway answered each bearer request
// 401 ("the token issuer is not ready yet") and counted it as a failed
// authentication, so that a client holding a good token, or a whole
// network behind one address, was locked out (429) after 30 requests in
// a minute, also past the moment the store answered, and told its token
// was invalid meanwhile. It is answered 503 with Retry-After, not counted.
func TestGatewayBearerWhileIssuerNotReady(t *testing.T) {
	t.Parallel()
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    roles:
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [publish]}]
    users:
      - {authid: alice, roles: [user], password: "%s"}
    oauth:
      clients:
        - {id: backend, secret: %q, roles: [user], grants: [password]}
mesh:
  node: edge-1
  leaf: {remotes: ["nats://%s"]}
  credentials: {token: "mesh-token-0123456789abcdef"}
gateway:
  listen: 127.0.0.1:0
  routes:
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}
`, oauthKeyFile(t), mustHash(t, oaAlicePW), mustHash(t, "backend-client-secret"), edgetest.FreeAddr(t))
	g := startGatewayRouter(t, "-config", writeFile(t, "notready.yaml", yml))
	// Any token: the node cannot check one yet.
	const tok = "eyJhbGciOiJFZERTQSIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJhbGljZSJ9.c2ln"
	for i := range 35 { // past gateway.limits.auth_failures (30 a minute)
		resp, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", "Bearer "+tok)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("bearer request %d while the issuer's state does not answer: %d (Retry-After %q) %s, want 503 with Retry-After",
				i+1, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
}
