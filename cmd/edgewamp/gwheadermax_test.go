package main

import (
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
