package main

import (
	"strings"
	"testing"
)

// TestAnonymousRouteNeedsAnonymousRealm: a route of auth type none
// without a role acts as its realm's anonymous principal, which a realm
// that takes no anonymous clients (its authmethods leave anonymous out,
// or, without authmethods, it has users or an oauth: block and no
// anonymous: true) does not have: the gateway answered every request 401
// "this realm needs credentials", on a route written to need none, and
// check-config said ok. It refuses the route now, naming the fixes; a
// route with a role of its own, or on a realm that takes anonymous
// clients, passes.
func TestAnonymousRouteNeedsAnonymousRealm(t *testing.T) {
	const route = "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - {name: ping, method: POST, path: /ping, realm: plant, publish: com.plant.ping, auth: {type: none}%s}\n"
	const users = "    users: [{authid: u, role: user, secret: s3cret}]\n"
	const want = `gateway.routes[0] (ping, POST /ping) has auth type none without a role: it acts as the anonymous principal of realm "plant", which takes no anonymous clients`
	for _, k := range []struct {
		name, realm, role string
		refused           bool
	}{
		{"users, no authmethods", "realms:\n  - name: plant\n" + users, "", true},
		{"authmethods without anonymous", "realms:\n  - name: plant\n    anonymous: true\n    authmethods: [wampcra]\n" + users, "", true},
		{"anonymous: false", "realms:\n  - name: plant\n    anonymous: false\n" + users, "", true},
		{"a role of its own", "realms:\n  - name: plant\n" + users, ", role: user", false},
		{"authmethods with anonymous", "realms:\n  - name: plant\n    authmethods: [anonymous, wampcra]\n" + users, "", false},
		{"anonymous: true, no authmethods", "realms:\n  - name: plant\n    anonymous: true\n" + users, "", false},
		{"no users", "realms:\n  - name: plant\n", "", false},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.realm+strings.Replace(route, "%s", k.role, 1)))
		switch {
		case k.refused && (code != 1 || !strings.Contains(e, want)):
			t.Errorf("%s: check-config exit %d: %s%s; want it refused: %q", k.name, code, o, e, want)
		case !k.refused && (code != 0 || strings.Contains(e, "auth type none")):
			t.Errorf("%s: check-config exit %d: %s%s; want it to pass", k.name, code, o, e)
		}
	}
}
