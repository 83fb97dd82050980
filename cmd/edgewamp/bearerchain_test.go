package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/oauth"
)

// publicJWKS is the JWKS the OAuth2 server publishes for the key in
// keyFile (its /.well-known/jwks.json), as an operator would save it.
func publicJWKS(t *testing.T, keyFiles ...string) string {
	t.Helper()
	set := jwk.NewSet()
	for _, f := range keyFiles {
		k, err := jwk.FromRaw(keyOf(t, f).Public())
		if err != nil {
			t.Fatal(err)
		}
		jwk.AssignKeyID(k)
		k.Set(jwk.AlgorithmKey, jwa.EdDSA)
		k.Set(jwk.KeyUsageKey, jwk.ForSignature)
		set.AddKey(k)
	}
	out, _ := json.Marshal(set)
	return writeFile(t, "jwks.json", string(out))
}

func keyOf(t *testing.T, keyFile string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := oauth.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// signAccessToken signs an at+jwt with the key in keyFile (its
// thumbprint as kid), as the OAuth2 server would.
func signAccessToken(t *testing.T, keyFile string, claims map[string]any) string {
	t.Helper()
	k, err := jwk.FromRaw(keyOf(t, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	jwk.AssignKeyID(k)
	h := jws.NewHeaders()
	h.Set(jws.KeyIDKey, k.KeyID())
	h.Set(jws.TypeKey, "at+jwt")
	payload, _ := json.Marshal(claims)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA, k, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// With gateway.bearer.jwks_file holding the binary's own OAuth2 server's
// public keys (which gateway.bearer's own comment calls it: "the OAuth2
// server's public keys"), a token the server refuses (revoked) was then
// tried against the JWKS, which verified its signature: a token of the
// server's, signed by its key, has no aud "wamp:<realm>", so it was taken
// on every realm, and its revocation was not honoured. A token that the
// server recognises as its own and refuses is refused: the chain goes on
// to the JWKS only for a token that is not the server's, and the JWKS
// verifier does not take a token of the server's issuer.
func TestGatewayOwnTokenRefusalIsFinal(t *testing.T) {
	key, old := oauthKeyFile(t), oauthKeyFile(t) // old: a key taken out of key_files, still in jwks_file
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: device
    roles:
      - name: device
        permissions: [{uri: com.example., match: prefix, allow: [register]}]
      - name: user
        http_bridge: true
        permissions: [{uri: com.example., match: prefix, allow: [call]}]
      - name: service
        permissions: []
    users:
      - {authid: alice, roles: [user], password: "%s"}
    oauth:
      clients:
        - {id: backend, secret: "%s", roles: [service], grants: [password]}
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s}
`, key, mustHash(t, oaAlicePW), mustHash(t, oaBackendPW), publicJWKS(t, key, old))
	cfgFile := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayRouter(t, "-config", cfgFile)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callee, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.example.ping", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"pong"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	alice, err := (&oauth2.Config{ClientID: "backend", ClientSecret: oaBackendPW, Endpoint: oauth2.Endpoint{TokenURL: g.base + "/oauth/token"}}).
		PasswordCredentialsToken(ctx, "alice", oaAlicePW)
	if err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(t, "POST", "/wamp/realm1/call/com.example.ping", `{}`, "Authorization", "Bearer "+alice.AccessToken); r.StatusCode != 200 {
		t.Fatalf("alice's call: %d %s", r.StatusCode, body)
	}
	form := url.Values{"token": {alice.AccessToken}}
	req, _ := http.NewRequest("POST", g.base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", oaBackendPW)
	if resp, err := g.hc.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	r, body := g.do(t, "POST", "/wamp/realm1/call/com.example.ping", `{}`, "Authorization", "Bearer "+alice.AccessToken)
	if r.StatusCode != 401 || !strings.Contains(string(body), "revoked") {
		t.Fatalf("the revoked token, with the server's JWKS as gateway.bearer's: %d %s, want 401 revoked", r.StatusCode, body)
	}
	// A token of the server's issuer signed by a key it no longer has
	// (taken out of key_files, say after a leak, but left in jwks_file):
	// the server does not know the key, and the JWKS verifier is not to
	// take the server's tokens either.
	now := time.Now()
	forged := signAccessToken(t, old, map[string]any{"iss": "http://gateway.test", "sub": "alice", "aud": "realm1",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "x1", "roles": []string{"user"}, "client_id": "backend"})
	r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.ping", `{}`, "Authorization", "Bearer "+forged)
	if r.StatusCode != 401 {
		t.Fatalf("a token of the server's issuer signed by a key it no longer has: %d %s, want 401", r.StatusCode, body)
	}
}
