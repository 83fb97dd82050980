package main

import (
	"fmt"
	"net/http"
	"testing"
)

// TestJWKSBearerScopeClaimForms: a route's auth.scopes are matched
// against the scopes of an external issuer's token, which issuers write
// in two claims and two forms: scope as a space-separated string (RFC
// 9068 §2.2.3, Keycloak, Auth0), scp as a list (Okta), scp as a
// space-separated string (Microsoft Entra ID), scope as a list (Spring
// Authorization Server). Only the first two were read: an Entra ID or
// Spring token holding the route's scope was refused 403 "the token
// lacks scope" at every request.
func TestJWKSBearerScopeClaimForms(t *testing.T) {
	keys := newJWKS(t)
	g := startReloadedGateway(t, fmt.Sprintf(`listeners: [{address: 127.0.0.1:0}]
realms:
  - name: realm1
    security: true
    anonymous: true
    anonymous_role: guest
    roles:
      - name: guest
      - name: user
        http_bridge: true
        permissions: [{uri: com., match: prefix, allow: [publish]}]
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s, issuer: "https://auth.test"}
  routes:
    - {method: POST, path: /pub, realm: realm1, publish: com.t, auth: {type: bearer, scopes: [plant.read]}}
`, keys.file))
	aud := []string{"wamp:realm1"}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   int
	}{
		{"scope string", map[string]any{"aud": aud, "scope": "openid plant.read"}, http.StatusOK},
		{"scp list", map[string]any{"aud": aud, "scp": []string{"openid", "plant.read"}}, http.StatusOK},
		{"scp string (Entra ID)", map[string]any{"aud": aud, "scp": "User.Read plant.read"}, http.StatusOK},
		{"scope list (Spring)", map[string]any{"aud": aud, "scope": []string{"openid", "plant.read"}}, http.StatusOK},
		{"scope string without it", map[string]any{"aud": aud, "scope": "openid plant.write"}, http.StatusForbidden},
		{"scp string without it", map[string]any{"aud": aud, "scp": "plant.readx"}, http.StatusForbidden},
		{"scope list without it", map[string]any{"aud": aud, "scope": []string{"plant.read plant.write"}}, http.StatusForbidden},
	} {
		r, body := g.do(t, "POST", "/pub", `{"args":[1]}`, "Authorization", keys.signed(t, "at+jwt", tc.claims))
		if r.StatusCode/100 != tc.want/100 {
			t.Errorf("%s: %d %s, want %d", tc.name, r.StatusCode, body, tc.want)
		}
	}
}
