package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestReloadAfterConfigMapSwap: a Kubernetes ConfigMap volume updates its
// files by writing a new timestamped directory and renaming the ..data
// symlink over the old one (the file the router names is a symlink to
// ..data/<key>). A SIGHUP sent right after the swap (a reloader sidecar's)
// reloads the new file: the quiet wait (5cdfd83) follows the symlinks to
// the new file and its fresh modification time, and does not refuse or
// miss it.
func TestReloadAfterConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "edgewamp.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_06_18_00_00.1", "realms:\n  - name: realm1\n    anonymous: true\n")
	path := filepath.Join(dir, "edgewamp.yaml")
	if err := os.Symlink("..data/edgewamp.yaml", path); err != nil {
		t.Fatal(err)
	}
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	version("..2026_12_06_18_01_00.2", "realms:\n  - name: realm1\n    anonymous: true\n  - name: realm2\n    anonymous: true\n")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.logs(), "SIGHUP: configuration") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if logs := r.logs(); !strings.Contains(logs, "SIGHUP: configuration reloaded") {
		t.Fatalf("no reload within 15 s:\n%s", lastLines(logs, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + r.addr, Realm: "realm2", Serializer: proto.MsgPack})
	if err != nil {
		t.Fatalf("realm2 after the swap and SIGHUP: %v\n%s", err, lastLines(r.logs(), 10))
	}
	s.Close()
}
