package main

import (
	"strings"
	"testing"
)

// TestGatewayRolesChecked: a role the gateway acts as (an API key's, a
// signing key's, a route's, a callee's or a webhook's) or a route
// requires (auth.roles), not among the roles of its realm, whose roles are
// a closed list (security: true), was taken: the key's requests, the
// route's calls, the callee's registration and the webhook's
// subscription were each refused not_authorized, and check-config said
// ok. It is refused, naming the key's path and line; on a realm without
// security (no list: any role may do anything) it is not.
func TestGatewayRolesChecked(t *testing.T) {
	const head = "realms:\n  - {name: open}\n  - name: plant\n    security: true\n    anonymous: false\n    roles: [{name: operator}]\n    users: [{authid: u, role: operator, secret: s3cret}]\ngateway:\n  listen: 127.0.0.1:0\n"
	for _, k := range []struct{ body, want string }{
		{"  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: plant, role: operater}\n",
			`line 11: gateway.api_keys[0].role "operater" is not a role of realm "plant", which has security on`},
		{"  signing_keys:\n    - {key: k1, secret: 0123456789abcdef0123, realm: plant, role: admin}\n",
			`line 11: gateway.signing_keys[0].role "admin" is not a role of realm "plant"`},
		{"  routes:\n    - {method: GET, path: /x, realm: plant, call: com.x, auth: {type: none}, role: viewer}\n",
			`line 11: gateway.routes[0].role "viewer" is not a role of realm "plant"`},
		{"  routes:\n    - {method: GET, path: /x, realm: plant, call: com.x, auth: {roles: [operator, oprator]}}\n",
			`line 11: gateway.routes[0].auth.roles[1] "oprator" is not a role of realm "plant"`},
		{"  callees:\n    - {realm: plant, procedure: com.x, url: \"http://127.0.0.1:1/\", role: backend}\n",
			`line 11: gateway.callees[0].role "backend" is not a role of realm "plant"`},
		{"  webhooks:\n    - {realm: plant, topic: com.x, url: \"http://127.0.0.1:1/\", role: hook}\n",
			`line 11: gateway.webhooks[0].role "hook" is not a role of realm "plant"`},
		// Defined roles, and any role on a realm without security.
		{"  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: plant, role: operator}\n    - {name: b, key: 0123456789abcdef0124, realm: open, role: anything}\n" +
			"  callees:\n    - {realm: open, procedure: com.x, url: \"http://127.0.0.1:1/\", role: backend}\n" +
			"  webhooks:\n    - {realm: plant, topic: com.x, url: \"http://127.0.0.1:1/\", role: operator}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, head+k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
