package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReloadChecksMovedCertPaths: a reload whose file names other TLS
// files for a listener said only that the new paths need a restart; the
// restart then failed when they did not load (a typo in the path), and
// the router stayed down until the file was fixed. The reload loads the
// new pair and says when it does not load; a pair that loads is not
// complained of.
func TestReloadChecksMovedCertPaths(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, cert, key, 1)
	moved, movedKey := filepath.Join(dir, "new-cert.pem"), filepath.Join(dir, "new-key.pem")
	writePair(t, moved, movedKey, 2)
	cfgPath := writeFile(t, "tls.yaml", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: "+cert+", key: "+key+"}\nrealms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath))
	r.waitLog("edgewamp started", 1)
	reload := func(certPath, keyPath string, n int) {
		t.Helper()
		body := "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: " + certPath + ", key: " + keyPath + "}\nrealms: [{name: realm1}]\n"
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog("SIGHUP: configuration reloaded", n)
	}
	const bad = "SIGHUP: the file's TLS files for a listener do not load"
	reload(moved, movedKey, 1)
	if got := strings.Count(r.logs(), "the new paths need a restart"); got != 1 || strings.Contains(r.logs(), bad) {
		t.Fatalf("a reload naming a good pair elsewhere: %d notes of the restart, or a complaint:\n%s", got, r.logs())
	}
	reload(filepath.Join(dir, "typo-cert.pem"), movedKey, 2)
	if !strings.Contains(r.logs(), bad) || !strings.Contains(r.logs(), "typo-cert.pem: no such file or directory") {
		t.Fatalf("a reload naming a certificate that does not exist did not say the restart would fail:\n%s", r.logs())
	}
}
