package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestGatewayMaxHeaderBounded: gateway.limits.max_header had no upper
// bound: check-config said ok to 1GiB, and the gateway's net/http then
// read a request head that long, holding it whole (about 1.6 times its
// bytes: four clients' 64 MiB heads held 410 MB of the router, measured),
// for as many connections as max_connections allows. Its maximum is now
// 64KiB, as limits.max_handshake's, refused past it naming the key and
// its line.
func TestGatewayMaxHeaderBounded(t *testing.T) {
	for _, k := range []struct{ body, want string }{
		{"gateway:\n  limits:\n    max_header: 1GiB\n", "line 3: gateway.limits.max_header 1073741824 bytes is above the maximum, 65536 bytes (64KiB)"},
		{"gateway:\n  limits: {max_header: 65537}\n", "line 2: gateway.limits.max_header 65537 bytes is above the maximum"},
		{"gateway:\n  limits: {max_header: 64KiB}\n", ""},
		{"gateway:\n  limits: {max_header: 0}\n", ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestGatewayMaxBodyBounded: gateway.limits.max_body and a route's
// body_limit had no upper bound: check-config said ok to 4GiB, and the
// gateway then read a request body that long whole, its buffer growing by
// doubling (one client's 511 MiB of body took the router from 23 MB to
// 1.5 GB resident, measured). The maximum is now 16MiB, the largest WAMP
// message, whose payload a body becomes; refused past it naming the key
// and its line.
func TestGatewayMaxBodyBounded(t *testing.T) {
	const route = "realms: [{name: realm1}]\ngateway:\n  routes:\n    - {method: POST, path: /p, realm: realm1, publish: com.x, body_limit: %s}\n"
	for _, k := range []struct{ body, want string }{
		{"gateway:\n  limits:\n    max_body: 4GiB\n", "line 3: gateway.limits.max_body 4294967296 bytes is above the maximum, 16777216 bytes (16MiB"},
		{"gateway:\n  limits: {max_body: 16777217}\n", "line 2: gateway.limits.max_body 16777217 bytes is above the maximum"},
		{fmt.Sprintf(route, "4GiB"), "line 4: gateway.routes[0].body_limit: 4294967296 bytes is above the maximum, 16777216 bytes (16MiB"},
		{"gateway:\n  limits: {max_body: 16MiB}\n", ""},
		{fmt.Sprintf(route, "16MiB"), ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}

// TestGatewayCalleeMaxResponseBounded: a callee's max_response had no
// upper bound when max_body got its 16MiB: check-config said ok to 4GiB,
// and the gateway read an upstream's answer that long whole (io.ReadAll),
// for each of the callee's max_concurrent calls, though an answer past the
// largest WAMP message cannot become its YIELD. Refused past 16MiB naming
// the key and its line, as max_body.
func TestGatewayCalleeMaxResponseBounded(t *testing.T) {
	const callee = "realms: [{name: realm1}]\ngateway:\n  callees:\n    - {name: up, realm: realm1, procedure: com.up, url: \"http://127.0.0.1:1/\", max_response: %s}\n"
	for _, k := range []struct{ body, want string }{
		{fmt.Sprintf(callee, "4GiB"), "line 4: gateway.callees[0].max_response: 4294967296 bytes is above the maximum, 16777216 bytes (16MiB"},
		{fmt.Sprintf(callee, "16777217"), "line 4: gateway.callees[0].max_response: 16777217 bytes is above the maximum"},
		{fmt.Sprintf(callee, "16MiB"), ""},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("check-config %q: exit %d: %s%s; want %q", k.body, code, o, e, k.want)
		}
	}
}
