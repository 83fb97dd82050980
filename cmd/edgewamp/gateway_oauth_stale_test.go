package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// A bearer token of the router's own OAuth2 server that has expired (or
// been revoked) is genuine, no guess: the gateway refuses it 401, but did
// not tell it from a forgery and counted each such request as a failed
// authentication of its address. 30 in a minute (gateway.limits.
// auth_failures; a dashboard polling until it refreshes, an office's
// browsers behind one address) locked the address out: 429 for 60 s,
// also for the fresh token the client had meanwhile.
func TestGatewayExpiredTokenNotCountedAsFailure(t *testing.T) {
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
    oauth:
      access_token_lifetime: 2s
      clients:
        - {id: backend, secret: %q, roles: [user], grants: [client_credentials]}
gateway:
  listen: 127.0.0.1:0
  routes:
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}
`, oauthKeyFile(t), mustHash(t, oaBackendPW))
	g := startGatewayRouter(t, "-config", writeFile(t, "stale.yaml", yml))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc := &clientcredentials.Config{ClientID: "backend", ClientSecret: oaBackendPW, TokenURL: g.base + "/oauth/token"}
	old, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", "Bearer "+old.AccessToken); r.StatusCode != 202 {
		t.Fatalf("a fresh token: %d %s", r.StatusCode, body)
	}
	time.Sleep(3100 * time.Millisecond) // past its 2 s lifetime (its exp is in whole seconds)
	for i := range 35 {                 // past gateway.limits.auth_failures (30 a minute)
		r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", "Bearer "+old.AccessToken)
		if r.StatusCode != 401 {
			t.Fatalf("request %d with the expired token: %d %s, want 401", i+1, r.StatusCode, body)
		}
	}
	fresh, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(t, "POST", "/news", `{"args":[2]}`, "Authorization", "Bearer "+fresh.AccessToken); r.StatusCode != 202 {
		t.Fatalf("the client's fresh token after its expired one's requests: %d %s, want 202", r.StatusCode, body)
	}
	// A revoked one (a sign-out while a page still polls with it) alike.
	rev := url.Values{"token": {fresh.AccessToken}, "client_id": {"backend"}, "client_secret": {oaBackendPW}}.Encode()
	if r, body := g.do(t, "POST", "/oauth/revoke", rev, "Content-Type", "application/x-www-form-urlencoded"); r.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", r.StatusCode, body)
	}
	for i := range 35 {
		r, body := g.do(t, "POST", "/news", `{"args":[3]}`, "Authorization", "Bearer "+fresh.AccessToken)
		if r.StatusCode != 401 {
			t.Fatalf("request %d with the revoked token: %d %s, want 401", i+1, r.StatusCode, body)
		}
	}
	last, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(t, "POST", "/news", `{"args":[4]}`, "Authorization", "Bearer "+last.AccessToken); r.StatusCode != 202 {
		t.Fatalf("the client's fresh token after its revoked one's requests: %d %s, want 202", r.StatusCode, body)
	}
}

// The same for a token of gateway.bearer's jwks_file beside the OAuth2
// server: the JWKS verifier refuses a token it verified before, and that
// has expired since, as genuine (gateway.ErrBearerStale), but the chain
// asks the OAuth2 server first, which does not know the token's key, and
// answered with the server's "not valid", counted: 30 requests of a
// dashboard holding an expired token of the operator's IdP locked its
// address out.
func TestGatewayExpiredJWKSTokenBesideOAuthNotCounted(t *testing.T) {
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
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s, issuer: "https://auth.test"}
  routes:
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, auth: {type: bearer}}
`, oauthKeyFile(t), mustHash(t, oaBackendPW), keys.file)
	g := startGatewayRouter(t, "-config", writeFile(t, "stalejwks.yaml", yml))
	exp := time.Now().Add(2 * time.Second)
	old := keys.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}, "exp": exp})
	if r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", old); r.StatusCode != 202 {
		t.Fatalf("a fresh JWKS token: %d %s", r.StatusCode, body)
	}
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	for i := range 35 { // past gateway.limits.auth_failures (30 a minute)
		r, body := g.do(t, "POST", "/news", `{"args":[1]}`, "Authorization", old)
		if r.StatusCode != 401 {
			t.Fatalf("request %d with the expired JWKS token: %d %s, want 401", i+1, r.StatusCode, body)
		}
	}
	fresh := keys.signed(t, "at+jwt", map[string]any{"aud": []string{"wamp:realm1"}})
	if r, body := g.do(t, "POST", "/news", `{"args":[2]}`, "Authorization", fresh); r.StatusCode != 202 {
		t.Fatalf("a fresh JWKS token after the expired one's requests: %d %s, want 202", r.StatusCode, body)
	}
	// A forgery (the expired token's claims, another signature) is still
	// counted: the address is refused 429 before the limit is far.
	parts := strings.Split(strings.TrimPrefix(old, "Bearer "), ".")
	forged := "Bearer " + parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	locked := false
	for i := range 35 {
		r, _ := g.do(t, "POST", "/news", `{"args":[3]}`, "Authorization", forged)
		if r.StatusCode == 429 {
			locked = true
			break
		}
		if r.StatusCode != 401 {
			t.Fatalf("forgery %d: %d, want 401 or 429", i+1, r.StatusCode)
		}
	}
	if !locked {
		t.Fatal("35 forged tokens were not counted: no 429")
	}
}
