package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileReadableWarned: a configuration file every local user
// may read that holds secrets in clear (an API key, a WAMP-CRA secret,
// the mesh token) is warned of by check-config and run; one readable by
// its owner and group only, or whose secrets come from the environment,
// is not. Before, nothing was said.
func TestSecretFileReadableWarned(t *testing.T) {
	t.Setenv("EDGEWAMP_TEST_KEY", "0123456789abcdef0123")
	const warning = "is readable by every local user (mode 0644) and holds secrets in clear ("
	inline := "realms:\n  - name: plant\n    users: [{authid: svc, role: r, secret: s3cret}]\ngateway:\n  listen: 127.0.0.1:0\n  api_keys: [{name: k, key: 0123456789abcdef0123, realm: plant, role: r}]\n"
	fromEnv := "gateway:\n  listen: 127.0.0.1:0\n  api_keys: [{name: k, key_env: EDGEWAMP_TEST_KEY, realm: realm1, role: r}]\n"
	for _, k := range []struct {
		name, body string
		mode       os.FileMode
		want       string // "" for no warning
	}{
		{"inline, 0644", inline, 0o644, "(realms[0].users[0].secret, gateway.api_keys[0].key)"},
		{"inline, 0640", inline, 0o640, ""},
		{"from the environment, 0644", fromEnv, 0o644, ""},
	} {
		p := writeFile(t, "c.yaml", k.body)
		if err := os.Chmod(p, k.mode); err != nil {
			t.Fatal(err)
		}
		_, e, code := runCLI("check-config", p)
		if code != 0 {
			t.Fatalf("%s: check-config: exit %d: %s", k.name, code, e)
		}
		if k.want == "" && strings.Contains(e, warning[:30]) || k.want != "" && !strings.Contains(e, warning+k.want[1:]) {
			t.Fatalf("%s: check-config's stderr:\n%s\nwant a warning naming %q (none if empty)", k.name, e, k.want)
		}
	}
	p := writeFile(t, "c.yaml", inline)
	os.Chmod(p, 0o644)
	r := launch(t, exec.Command(binPath, "run", "-config", p, "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), "level=WARN msg=\""+p+" "+warning) {
		t.Fatalf("run did not warn:\n%s", r.logs())
	}
}

// TestRunAsRootWarned: run as root, the router says it needs no
// privilege (the unit and the container image run it as a user of its
// own). Before, nothing was said. Skipped unless the test runs as root.
func TestRunAsRootWarned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="running as root: the router needs no privilege`) {
		t.Fatalf("run as root did not warn:\n%s", r.logs())
	}
}

// TestKeyFileReadableWarned: a listener's TLS private key that every
// local user may read is warned of by check-config and run (anyone on the
// machine could impersonate the router to its clients); at 0600 it is not.
// Before, nothing was said.
func TestKeyFileReadableWarned(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, cert, key, 1)
	cfg := writeFile(t, "c.yaml", "listeners:\n  - address: \"127.0.0.1:0\"\n    tls: {cert: "+cert+", key: "+key+"}\ngateway: {listen: \"off\"}\n")
	warning := "warning: listeners[0].tls.key " + key + " is readable by every local user (mode 0644): it is a private key"
	for _, mode := range []os.FileMode{0o644, 0o600} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, e, code := runCLI("check-config", cfg)
		if code != 0 || strings.Contains(e, warning) != (mode == 0o644) {
			t.Fatalf("check-config with the key at %04o: exit %d, stderr:\n%s\nwant the warning: %v", mode, code, e, mode == 0o644)
		}
	}
	os.Chmod(key, 0o644)
	r := launch(t, exec.Command(binPath, "run", "-config", cfg))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="listeners[0].tls.key `+key+` is readable by every local user`) {
		t.Fatalf("run did not warn:\n%s", r.logs())
	}
}
