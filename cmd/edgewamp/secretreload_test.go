package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadableSecretsWarnedOnSIGHUP: a configuration file holding secrets
// in clear, or a private key file, made readable by every local user
// while the router runs (a configuration tool writing it 0644) was warned
// about at start and by check-config only: a SIGHUP reloaded it without
// a word. The reload says it, once: a reload that changes nothing of it
// does not say it again, one after which another file became readable
// does.
func TestReadableSecretsWarnedOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certPath, keyPath, 1)
	cfgPath := writeFile(t, "secrets.yaml", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: "+certPath+", key: "+keyPath+"}\n"+
		"realms: [{name: realm1}]\ngateway:\n  api_keys:\n    - {name: a, key: 0123456789abcdef0123, realm: realm1, role: r}\n")
	if err := os.Chmod(cfgPath, 0o600); err != nil {
		t.Fatal(err)
	}
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath))
	r.waitLog("edgewamp started", 1)
	const readable = "is readable by every local user"
	if strings.Contains(r.logs(), readable) {
		t.Fatalf("warned at start of files only the router reads:\n%s", r.logs())
	}
	hup := func(n int) {
		t.Helper()
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog("SIGHUP: configuration reloaded", n)
	}
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	hup(1)
	if got := strings.Count(r.logs(), "SIGHUP: "+cfgPath+" "+readable); got != 1 {
		t.Fatalf("after the file was made 0644 and SIGHUP: %d warnings of it, want 1:\n%s", got, r.logs())
	}
	hup(2)
	if got := strings.Count(r.logs(), readable); got != 1 {
		t.Fatalf("a reload that changed nothing said it again: %d warnings, want 1:\n%s", got, r.logs())
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	hup(3)
	if got := strings.Count(r.logs(), "SIGHUP: listeners[0].tls.key "+keyPath+" "+readable); got != 1 {
		t.Fatalf("after the TLS key was made 0644 and SIGHUP: %d warnings of it, want 1:\n%s", got, r.logs())
	}
}
