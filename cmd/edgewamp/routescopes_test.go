package main

import (
	"strings"
	"testing"
)

// TestRouteScopeNotATokenRefused: a route's auth.scopes entry with a
// space ("read write", meant as both) was held by no token (a token's
// scope claim is split at spaces), so every request to the route was
// refused 403 "the token lacks scope", while check-config said ok; one
// with a double quote broke the 403's WWW-Authenticate. check-config
// refuses such an entry, naming it and its line.
func TestRouteScopeNotATokenRefused(t *testing.T) {
	// realm1's oauth: block issues the bearer tokens the routes take.
	const head = "realms: [{name: realm1, oauth: {clients: [{id: c, public: true}]}}]\ngateway:\n  listen: 127.0.0.1:0\n  routes:\n"
	for _, k := range []struct{ body, want string }{
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {type: bearer, scopes: [\"read write\"]}}\n",
			`line 5: gateway.routes[0].auth.scopes[0] "read write" is not one scope`},
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {scopes: [read, 'a\"b']}}\n",
			`line 5: gateway.routes[0].auth.scopes[1] "a\"b" is not one scope`},
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {scopes: [\"\"]}}\n",
			`gateway.routes[0].auth.scopes[0] "" is not one scope`},
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {type: bearer, scopes: [read, write, \"plant:1/x\"]}}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, head+k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
