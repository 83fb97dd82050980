package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDecoySecretReadSafely: data_dir/wampcra-decoy.key is read as the
// other secret files are. A named pipe there is refused at start (before,
// run's open waited for a writer for ever, and a SIGHUP's reload on the
// signal goroutine would have too); a large file is refused without being
// read (before, read whole: 64 MiB here, then refused for its length);
// one every local user may read draws check-config's warning (with it, a
// local user can tell which authids are users from their WAMP-CRA salts).
func TestDecoySecretReadSafely(t *testing.T) {
	start := func(t *testing.T, dir string) string {
		t.Helper()
		p := writeConfig(t, "data_dir: "+dir+"\n")
		out, err := cmdOutputWithin(exec.Command(binPath, "run", "-config", p, "-listen", "127.0.0.1:0", "-gateway-listen", "off"), 20*time.Second)
		if code := exitCode(err); code != 1 {
			t.Errorf("run: exit %d (%v), want 1:\n%s", code, err, out)
		}
		return string(out)
	}
	t.Run("pipe", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(dir, decoyFile), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := start(t, dir); !strings.Contains(out, decoyFile+" is a named pipe, not a regular file") {
			t.Errorf("run does not say the decoy is a named pipe:\n%s", out)
		}
	})
	t.Run("large", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, decoyFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(dir, decoyFile), 64<<20); err != nil {
			t.Fatal(err)
		}
		if out := start(t, dir); !strings.Contains(out, decoyFile+" is larger than") {
			t.Errorf("run does not refuse the large decoy unread:\n%s", out)
		}
	})
	t.Run("readable", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, decoyFile), make([]byte, decoySize), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, decoyFile), 0o644)
		_, e, code := runCLI("check-config", writeConfig(t, "data_dir: "+dir+"\n"))
		if want := decoyFile + " is readable by every local user (mode 0644)"; code != 0 || !strings.Contains(e, want) {
			t.Errorf("check-config: exit %d: %s\nwant 0 and %q", code, e, want)
		}
	})
}
