package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The WebSocket path and the health check's are compared with the path of
// a request's target (without its query), which holds visible ASCII only:
// a configured path with a query, a fragment, a space or another octet a
// request line cannot carry never matches, and every upgrade (or health
// check) got 404 from a configuration check-config called ok. (Found
// comparing http.go's requestPath with the keys' validation.)
func TestCheckConfigRefusesUnreachablePaths(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct{ key, path string }{
		{"path", "/ws?v=2"},
		{"path", "/w s"},
		{"path", "/ws#top"},
		{"path", "/wé"},
		{"health_path", "/healthz?full"},
		{"health_path", "/health\tz"},
	} {
		p := filepath.Join(dir, "c"+string(rune('a'+i))+".yaml")
		body := "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\nwebsocket: {" + tc.key + ": \"" +
			strings.ReplaceAll(tc.path, "\t", `\t`) + "\"}\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := runCLI("check-config", p)
		if want := "websocket." + tc.key; code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "never match") {
			t.Errorf("websocket.%s %q: check-config exit %d, %q; want it refused", tc.key, tc.path, code, strings.TrimSpace(stderr))
		}
	}
	p := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(p, []byte("listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\nwebsocket: {path: \"/wamp/v2;x=%20\", health_path: /-/ready}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI("check-config", p); code != 0 {
		t.Errorf("reachable paths refused: %s", stderr)
	}
}
