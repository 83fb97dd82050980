package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWebSocketAllowedOriginsForm: websocket.allowed_origins compares
// its entries with the Origin header a browser sends, which is always
// scheme://host[:port]. An entry without the scheme (example.com) was
// taken by check-config and run and never matched: every browser upgrade
// got 403. Such entries are refused now, naming the entry and the form;
// an entry's case and a trailing / no longer keep it from matching.
func TestWebSocketAllowedOriginsForm(t *testing.T) {
	for _, bad := range []string{"example.com", "example.com:443", "https://example.com/app", "https://example.com?x", "//example.com", "https://*.example.com"} {
		path := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1, anonymous: true}]\ngateway: {listen: \"off\"}\n"+
			"websocket:\n  allowed_origins:\n    - https://ok.example\n    - \""+bad+"\"\n")
		out, errOut, code := runCLI("check-config", path)
		want := `line 7: websocket.allowed_origins[1]: an origin is scheme://host[:port]`
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, bad) {
			t.Fatalf("check-config with %q: exit %d, %s%s; want exit 1 and %q naming the entry", bad, code, out, errOut, want)
		}
		if started, log := runStarts(t, path); started {
			t.Fatalf("run started with allowed_origins entry %q:\n%s", bad, lastLines(log, 3))
		}
	}

	// The forms that are taken match as a browser sends its Origin.
	path := writeFile(t, "ok.yaml", "realms: [{name: realm1, anonymous: true}]\nwebsocket:\n  allowed_origins: [\"https://App.Example/\", \"http://localhost:8000\", \"null\", \"https://Port.Example:443\"]\n")
	if out, errOut, code := runCLI("check-config", path); code != 0 {
		t.Fatalf("check-config: exit %d: %s%s", code, out, errOut)
	}
	r := startRouter(t, "-config", path)
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"https://app.example", http.StatusSwitchingProtocols},
		{"http://localhost:8000", http.StatusSwitchingProtocols},
		{"null", http.StatusSwitchingProtocols},
		{"https://port.example", http.StatusSwitchingProtocols}, // the entry's default port left out, as browsers do
		{"https://evil.example", http.StatusForbidden},
		{"http://app.example", http.StatusForbidden},
		{"", http.StatusForbidden}, // no Origin header (README says so)
	} {
		if got := upgradeStatus(t, r.addr, tc.origin); got != tc.status {
			t.Errorf("Origin %s: HTTP %d, want %d", tc.origin, got, tc.status)
		}
	}
}

// upgradeStatus sends a WebSocket upgrade with the Origin header to addr
// (none when origin is empty) and returns the answer's status.
func upgradeStatus(t *testing.T, addr, origin string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	req += "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("Origin %s: %v", origin, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
