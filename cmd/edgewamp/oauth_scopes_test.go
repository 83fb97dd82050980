package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// A reload that takes a scope from a client (realms[].oauth.clients[].
// scopes) left the client's access tokens issued with it holding it:
// the gateway matched a route's auth.scopes against the scopes written
// into the token, and introspection reported them, until the token
// expired (access_token_lifetime, up to 24 h), where a role a reload takes
// is honoured at once (HeldRoles). The scopes a token's holder may use are
// now those of its scopes its client may still have.
func TestScopeRemovedByReloadNotHeld(t *testing.T) {
	const secret = "svc-secret-0123456789"
	yml := func(scopes string) string {
		return `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
    oauth:
      clients:
        - {id: svc, secret: "` + mustHash(t, secret) + `", roles: [service], scopes: [` + scopes + `], grants: [client_credentials]}
`
	}
	is := startIssuer(t, yml("read, write"))
	tok := is.cc("svc", secret)
	bearer := oauthBearer{is.oa}
	scopes := func() ([]string, string) {
		t.Helper()
		p, err := bearer.VerifyBearer(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", is.url+"/oauth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		s, _ := m["scope"].(string)
		return p.Scopes, s
	}
	if got, intro := scopes(); !slices.Equal(got, []string{"read", "write"}) || intro != "read write" {
		t.Fatalf("before the reload: gateway scopes %v, introspection %q", got, intro)
	}
	cfg, err := parseConfig([]byte(yml("read")), nil)
	if err != nil {
		t.Fatal(err)
	}
	realms, err := cfg.realmConfigsWith(is.oa)
	if err != nil {
		t.Fatal(err)
	}
	if err := is.oa.reload(cfg, realms); err != nil {
		t.Fatal(err)
	}
	if got, intro := scopes(); !slices.Equal(got, []string{"read"}) || intro != "read" {
		t.Errorf("after a reload took scope write from the client: gateway scopes %v, introspection %q; want [read], \"read\"", got, intro)
	}
}
