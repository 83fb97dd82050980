package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/edgewamp/edgewamp/oauth"
)

// TestReloadWarnsOfChangedStartFiles (found by the review of the reload
// as an operator): the OAuth2 signing keys (oauth.key_files), like the
// mesh's CA and nkey seed, are read at start only. An operator who
// rotated a leaked signing key by rewriting its file and sent SIGHUP was
// told "configuration reloaded", with no word that the router went on
// signing with the leaked key: the warning of settings that need a
// restart compares the file's settings, and the path had not changed.
// Now the reload names each such file whose content changed since the
// start; one left as it was draws nothing.
func TestReloadWarnsOfChangedStartFiles(t *testing.T) {
	key := oauthKeyFile(t)
	path := writeFile(t, "c.yaml", oauthYAML(t, oaIssuer, key, "", ""))
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	const warning = "SIGHUP: files read at start only were changed"
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	if strings.Contains(r.logs(), warning) {
		t.Fatalf("a reload with the key file as it was warned of it:\n%s", grepLines(r.logs(), warning))
	}
	pem, err := oauth.GenerateKeyPEM("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 2)
	if l := grepLines(r.logs(), warning); !strings.Contains(l, "oauth.key_files[0] "+key) {
		t.Fatalf("a reload after the OAuth2 key file was rewritten: no warning naming it:\n%s", lastLines(r.logs(), 3))
	}
}
