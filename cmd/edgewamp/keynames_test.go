package main

import (
	"strings"
	"testing"
)

// TestGatewayKeyNamesUnique: two API keys of one name (given, or the
// default key<index> the gateway gives an unnamed one), or an API key
// named as a signing key's id, were taken: a route's auth.keys naming
// the name took both keys, where the operator meant one. check-config
// (and run and a reload, which validate alike) refuse it, naming the key
// and its line.
func TestGatewayKeyNamesUnique(t *testing.T) {
	const head = "gateway:\n  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: realm1, role: r}\n"
	for _, k := range []struct{ body, want string }{
		{head + "    - {name: a, key: 0123456789abcdef0124, realm: realm1, role: r}\n",
			`line 4: gateway.api_keys[1].name "a" is the name of gateway.api_keys[0] too: a route's auth.keys naming it would take both`},
		{"gateway:\n  api_keys:\n    - {name: key1, key: 0123456789abcdef0123, realm: realm1, role: r}\n    - {key: 0123456789abcdef0124, realm: realm1, role: r}\n",
			`line 4: gateway.api_keys[1] has no name, and its default name "key1" is the name of gateway.api_keys[0] too`},
		{head + "  signing_keys:\n    - {key: a, secret: 0123456789abcdef0123, realm: realm1, role: r}\n",
			`line 5: gateway.signing_keys[0].key "a" is the name of gateway.api_keys[0] too`},
		{head + "    - {name: b, key: 0123456789abcdef0124, realm: realm1, role: r}\n    - {key: 0123456789abcdef0125, realm: realm1, role: r}\n  signing_keys:\n    - {key: c, secret: 0123456789abcdef0123, realm: realm1, role: r}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestRouteKeyOfOtherRealmRefused: a route's auth.keys naming a key of
// another realm than the route's was taken; the gateway judges the key
// against the route's realm, and every request with it was refused 403
// ("the API key is not valid for realm ..."). check-config refuses it,
// naming the route's key and line.
func TestRouteKeyOfOtherRealmRefused(t *testing.T) {
	const head = "realms: [{name: realm1}, {name: realm2}]\ngateway:\n  listen: 127.0.0.1:0\n  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: realm1, role: r}\n" +
		"  signing_keys:\n    - {key: s, secret: 0123456789abcdef0123, realm: realm2, role: r}\n  routes:\n"
	for _, k := range []struct{ body, want string }{
		{"    - {method: GET, path: /x, realm: realm2, call: com.x, auth: {keys: [s, a]}}\n",
			`line 9: gateway.routes[0].auth.keys[1]: key "a" is of realm "realm1", not the route's realm "realm2"`},
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {type: signed, keys: [s]}}\n",
			`line 9: gateway.routes[0].auth.keys[0]: key "s" is of realm "realm2", not the route's realm "realm1"`},
		{"    - {method: GET, path: /x, realm: realm1, call: com.x, auth: {keys: [a]}}\n    - {method: GET, path: /y, realm: realm2, call: com.y, auth: {keys: [s]}}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, head+k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
