//go:build !nomesh

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

// TestStopDuringMeshStart: a SIGTERM while the mesh's embedded NATS server
// is not ready yet ends the start promptly and cleanly (exit 0, "stop
// signal while starting"). The server is held here by its JetStream store:
// a stream's meta.inf that is a named pipe, which its recovery reads
// before it opens its listeners. Before, the stop waited for the node's
// 30 s readiness wait, then the router exited 1 ("the NATS server did not
// start"): 27 s after the signal here, as long as systemd's default
// TimeoutStopSec allows before its SIGKILL.
func TestStopDuringMeshStart(t *testing.T) {
	dir := t.TempDir()
	stream := filepath.Join(dir, "store", "jetstream", "$G", "streams", "KV_x")
	if err := os.MkdirAll(stream, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(stream, "meta.inf"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, "mesh: {node: hub, leaf: {listen: \"127.0.0.1:0\"}, store_dir: "+filepath.Join(dir, "store")+"}\n")
	cmd := exec.Command(binPath, "run", "-config", p, "-listen", "127.0.0.1:0", "-gateway-listen", "off")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			<-done
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "open-file limit"); {
		if time.Now().After(deadline) {
			t.Fatalf("the router did not reach its mesh start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // in the mesh's start, waiting for NATS
	cmd.Process.Signal(syscall.SIGTERM)
	sent := time.Now()
	select {
	case err := <-done:
		exited = true
		took := time.Since(sent)
		t.Logf("exited %v after the SIGTERM", took.Round(time.Millisecond))
		if code := exitCode(err); code != 0 || !strings.Contains(out.String(), "stop signal while starting") {
			t.Fatalf("exit %d (%v) %v after the SIGTERM, want 0 and \"stop signal while starting\":\n%s", code, err, took, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after the SIGTERM (the mesh's readiness wait):\n%s", out.String())
	}
}
