package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigTLSLines: README says check-config's errors name the line
// and that it shows them all; a listener's or the gateway's certificate that
// does not load named no line, and only the first listener's was reported.
func TestCheckConfigTLSLines(t *testing.T) {
	dir := t.TempDir()
	body := "listeners:\n  - address: 127.0.0.1:9000\n    tls:\n      cert: /nonexistent/a.pem\n      key: /nonexistent/a.key\n" +
		"  - address: 127.0.0.1:9001\n    tls: {cert: /nonexistent/b.pem, key: /nonexistent/b.key}\n" +
		"gateway:\n  listen: 127.0.0.1:9002\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/c.key\n"
	p := filepath.Join(dir, "tls.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI("check-config", p)
	for _, w := range []string{"line 3: listener 127.0.0.1:9000: TLS certificate /nonexistent/a.pem",
		"line 7: listener 127.0.0.1:9001: TLS certificate /nonexistent/b.pem",
		"line 10: gateway: TLS certificate /nonexistent/c.pem"} {
		if code != 1 || !strings.Contains(out+errOut, w) {
			t.Errorf("exit %d, output %q; want exit 1 and %q", code, out+errOut, w)
		}
	}
}
