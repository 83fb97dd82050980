package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestGatewayAllowedOriginsDefaultPort: an entry of gateway.cors's (the
// bridge endpoints') or a route's cors allowed_origins with its scheme's default port
// ("https://app.example:443") passed check-config, but a browser leaves
// that port out of its Origin, and the gateway compared the two as
// written: every request from the page was refused 403 ("requests from
// origin ... are not allowed"), where websocket.allowed_origins takes
// the same entry (TestWebSocketAllowedOriginsForm). The entries are taken
// as a browser sends its Origin, as the WebSocket's are.
func TestGatewayAllowedOriginsDefaultPort(t *testing.T) {
	path := writeFile(t, "cors.yaml", `realms: [{name: realm1, anonymous: true}]
gateway:
  cors: {allowed_origins: ["https://App.Example:443", "http://plain.example:80"]}
  routes:
    - {method: POST, path: /q, realm: realm1, publish: com.y, cors: {allowed_origins: ["https://route.example:443/"]}}
`)
	g := startGatewayRouter(t, "-config", path)
	for _, tc := range []struct {
		path, origin string
		status       int
	}{
		{"/wamp/realm1/publish/com.x", "https://app.example", 0}, // the bridge endpoints' (gateway.cors)
		{"/wamp/realm1/publish/com.x", "http://plain.example", 0},
		{"/q", "https://route.example", 0}, // a route's own
		{"/wamp/realm1/publish/com.x", "https://evil.example", http.StatusForbidden},
		{"/wamp/realm1/publish/com.x", "http://app.example", http.StatusForbidden},
		{"/q", "https://app.example", http.StatusForbidden},
	} {
		req, err := http.NewRequest("POST", g.base+tc.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", tc.origin)
		resp, err := g.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		if tc.status == 0 && (resp.StatusCode >= 300 || acao != tc.origin) || tc.status != 0 && resp.StatusCode != tc.status {
			t.Errorf("POST %s, Origin %s: HTTP %d, Access-Control-Allow-Origin %q; want %d (0: served, the origin allowed)", tc.path, tc.origin, resp.StatusCode, acao, tc.status)
		}
	}
}
