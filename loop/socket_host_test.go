package loop

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// [RFC9112 §3.2]: a server MUST answer 400 to an HTTP/1.1 request without
// Host, and to any request with two Host lines or a Host that is not a
// host[:port]. gobwas/ws refused only a missing Host on an upgrade: a
// health check without Host got 200, an upgrade with two Hosts (which a
// proxy and the router may read differently) got 101. HTTP/1.0 needs none.
func TestSocketHTTPHostRequired(t *testing.T) {
	t.Parallel()
	s, h := badInputServer(t)
	upgrade := string(wsUpgradeRequest("/ws", "wamp.2.json"))
	cases := []struct {
		name   string
		req    string
		status int
	}{
		{"health-no-host", "GET /healthz HTTP/1.1\r\n\r\n", 400},
		{"health-two-hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"health-host-with-space", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"health-host-with-slash", "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"notfound-no-host", "GET /nope HTTP/1.1\r\n\r\n", 400},
		{"upgrade-two-hosts", strings.Replace(upgrade, "Host: 127.0.0.1\r\n", "Host: 127.0.0.1\r\nHost: evil.example\r\n", 1), 400},
		{"upgrade-no-host", strings.Replace(upgrade, "Host: 127.0.0.1\r\n", "", 1), 400},
		// What stays accepted.
		{"health-1.0-no-host", "GET /healthz HTTP/1.0\r\n\r\n", 200},
		{"health-empty-host", "GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", 200},
		{"health-ipv6-host", "GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200},
		{"health-host-case", "GET /healthz HTTP/1.1\r\nhOST: Example.COM:80\r\n\r\n", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httpExchange(t, s.url, []byte(tc.req), false)
			if r.status != tc.status {
				t.Fatalf("got %d %q, want %d", r.status, r.body, tc.status)
			}
			if tc.status == 400 && !strings.Contains(r.body, "Host") {
				t.Errorf("400 body does not say why: %q", r.body)
			}
		})
	}
	// An upgrade with one Host still goes through.
	dialWS(t, s.url, proto.JSON)
	h.check()
}
