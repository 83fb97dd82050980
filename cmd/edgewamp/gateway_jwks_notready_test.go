//go:build !nomesh

package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// While the OAuth2 server's shared state does not answer yet (an edge node
// whose hub is unreachable), bearerChain answered every token the
// gateway.bearer (JWKS) verifier refused with the server's "cannot be
// checked yet": 503 with Retry-After, not counted. A token of the
// operator's IdP that had expired was told "try again shortly" rather
// than 401 (a client refreshes on 401, retries on 503), and forgeries
// of the IdP's tokens, a signature check each, were never counted, for as
// long as the hub stayed unreachable. A token that does not claim the
// server's issuer cannot be the server's: the JWKS verifier's answer
// stands; one that claims it is still answered 503.
func TestGatewayJWKSForgeriesCountedWhileIssuerNotReady(t *testing.T) {
	t.Parallel()
	keys := newJWKS(t)
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
    oauth:
      clients:
        - {id: backend, secret: %q, roles: [user], grants: [client_credentials]}
mesh:
  node: edge-1
  leaf: {remotes: ["nats://%s"]}
  credentials: {token: "mesh-token-0123456789abcdef"}
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s, issuer: "https://auth.test"}
  routes:
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}
`, oauthKeyFile(t), mustHash(t, oaBackendPW), edgetest.FreeAddr(t), keys.file)
	g := startGatewayRouter(t, "-config", writeFile(t, "jwksnotready.yaml", yml))
	good := keys.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}})
	if r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", good); r.StatusCode != 202 {
		t.Fatalf("a good JWKS token while the issuer is not ready: %d %s, want 202", r.StatusCode, body)
	}
	// A token claiming the server's issuer: the server's to judge, 503.
	own := "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6IngiLCJ0eXAiOiJhdCtqd3QifQ." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"http://gateway.test","sub":"alice"}`)) + ".c2ln"
	if r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", own); r.StatusCode != 503 {
		t.Fatalf("a token of the server's issuer while it is not ready: %d %s, want 503", r.StatusCode, body)
	}
	expired := keys.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}, "exp": time.Now().Add(-2 * time.Minute)})
	if r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", expired); r.StatusCode != 401 {
		t.Fatalf("an expired JWKS token while the issuer is not ready: %d %s, want 401 (the JWKS verifier's answer)", r.StatusCode, body)
	}
	parts := strings.Split(strings.TrimPrefix(good, "Bearer "), ".")
	forged := "Bearer " + parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for i := range 35 { // past gateway.limits.auth_failures (30 a minute)
		r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", forged)
		switch r.StatusCode {
		case 401:
			continue
		case 429:
			return
		}
		t.Fatalf("forgery %d of a JWKS token while the issuer is not ready: %d %s, want 401, and 429 once counted past the limit", i+1, r.StatusCode, body)
	}
	t.Fatal("35 forgeries of a JWKS token while the issuer is not ready: never refused 429, not counted")
}
