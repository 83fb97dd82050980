package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadOfKeyFIFONeverBlocks: the files a SIGHUP reads besides the
// configuration (a TLS listener's certificate and key, gateway.bearer's
// jwks_file, oauth.key_files) were read with os.ReadFile on the goroutine
// that handles the signals: one replaced by a named pipe without a writer
// made the reload wait for ever, and the SIGTERM after it was never
// handled (systemd's stop ending in SIGKILL), as the configuration's own
// pipe once did (TestReloadOfPipeNeverBlocks). Each is refused, naming
// it, and the stop exits at once; check-config refuses it too.
func TestReloadOfKeyFIFONeverBlocks(t *testing.T) {
	for _, which := range []string{"cert", "key", "jwks", "oauth"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"cert": filepath.Join(dir, "cert.pem"), "key": filepath.Join(dir, "key.pem"),
				"jwks": newJWKS(t).file, "oauth": oauthKeyFile(t),
			}
			writePair(t, files["cert"], files["key"], 1)
			cfg := writeConfig(t, fmt.Sprintf(`listeners: [{address: "127.0.0.1:0", tls: {cert: %s, key: %s}}]
oauth: {key_files: [%s]}
realms:
  - name: realm1
    oauth: {clients: []}
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %s}
`, files["cert"], files["key"], files["oauth"], files["jwks"]))
			r := launch(t, exec.Command(binPath, "run", "-config", cfg, "-gateway-listen", "127.0.0.1:0"))
			r.waitLog("edgewamp started", 1)
			fifo := files[which]
			if err := os.Remove(fifo); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			r.cmd.Process.Signal(syscall.SIGHUP)
			time.Sleep(300 * time.Millisecond)
			r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-r.done:
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, r.logs())
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("SIGTERM after a SIGHUP with %s a named pipe: still running 3 s later\n%s", which, r.logs())
			}
			if want := fifo + " is a named pipe, not a regular file"; !strings.Contains(r.logs(), want) {
				t.Fatalf("the reload did not say %q:\n%s", want, r.logs())
			}
			_, e, code := runCLI("check-config", cfg)
			if want := fifo + " is a named pipe, not a regular file"; code != 1 || !strings.Contains(e, want) {
				t.Fatalf("check-config with %s a named pipe: exit %d, %s; want %q", which, code, e, want)
			}
		})
	}
}
