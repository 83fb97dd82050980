package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestRouteAuthRolesOfBearerClaims: a route's auth.roles are matched
// against every role a principal holds, a bearer token's roles claim
// included, while its session acts as one role (authrole, or the first):
// a route of a realm with security that admits tokens holding "admin", an
// identity provider's role the realm need not define, and calls as
// "operator", which it does, works, and must not be refused as a role the
// realm does not define. A route that takes no bearer token (api_key)
// still has such a role refused: nothing could hold it.
func TestRouteAuthRolesOfBearerClaims(t *testing.T) {
	keys := newJWKS(t)
	yml := fmt.Sprintf(`realms:
  - name: plant
    security: true
    anonymous: true
    anonymous_role: operator
    roles:
      - name: operator
        permissions: [{uri: com.plant., match: prefix, allow: [register, call]}]
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s, issuer: "https://auth.test"}
  routes:
    - {method: GET, path: /plant/x, realm: plant, call: com.plant.x, auth: {type: bearer, roles: [admin]}}
`, keys.file)
	if o, e, code := runCLI("check-config", writeConfig(t, yml)); code != 0 {
		t.Fatalf("check-config of a bearer route requiring the roles claim's admin: exit %d: %s%s", code, o, e)
	}
	bad := strings.Replace(yml, "{type: bearer, roles: [admin]}", "{type: api_key, roles: [admin]}", 1)
	if _, e, code := runCLI("check-config", writeConfig(t, bad)); code != 1 || !strings.Contains(e, `gateway.routes[0].auth.roles[0] "admin" is not a role of realm "plant"`) {
		t.Fatalf("check-config of an api_key route requiring an undefined role: exit %d: %s", code, e)
	}

	g := startReloadedGateway(t, yml)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee, err := client.Dial(ctx, client.Config{URL: "rs://" + g.router.addr, Realm: "plant", Serializer: proto.JSON})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.plant.x", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"served"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	token := func(roles ...string) string {
		tok, err := jwt.NewBuilder().Issuer("https://auth.test").Subject("alice").Audience([]string{"wamp:plant"}).
			IssuedAt(time.Now()).Expiration(time.Now().Add(5*time.Minute)).Claim("authrole", "operator").Claim("roles", roles).Build()
		if err != nil {
			t.Fatal(err)
		}
		s, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, keys.priv))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + string(s)
	}
	resp, body := g.do(t, "GET", "/plant/x", "", "Authorization", token("operator"))
	expectProblem(t, resp, body, 403, proto.URINotAuthorized)
	resp, body = g.do(t, "GET", "/plant/x", "", "Authorization", token("operator", "admin"))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "served") {
		t.Fatalf("a token holding admin, acting as operator: %d %s, want 200 and the callee's result", resp.StatusCode, body)
	}
}
