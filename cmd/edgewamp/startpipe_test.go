package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopWhileReadingConfigFromPipe (found by the review of the command
// line as an attacker): run takes the stop signals from its first line,
// before it reads its configuration, which may be a pipe (-config
// <(...), a named pipe) whose writer has not written it all yet, or has
// not opened it. A SIGTERM or a Ctrl-C meanwhile was taken and never
// looked at: the router ignored every stop signal for as long as the
// writer did not finish (for ever without one; systemd's stop then ends
// in SIGKILL after TimeoutStopSec). Now a stop signal ends the start
// there, exit status 0 as at the start's other steps, saying so.
func TestStopWhileReadingConfigFromPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(binPath, "run", "-config", fifo, "-listen", "127.0.0.1:0", "-gateway-listen", "off")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed once it exited, waitErr set
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	// A writer that opens the pipe and writes half the file, then waits:
	// opening it without blocking succeeds once the router has the pipe
	// open for reading (ENXIO before), well after run took the signals.
	var w *os.File
	deadline := time.Now().Add(20 * time.Second)
	for {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			w = f
			break
		}
		if !errors.Is(err, syscall.ENXIO) || time.Now().After(deadline) {
			t.Fatalf("the router did not open its configuration: %v\n%s", err, out.String())
		}
		select {
		case <-done:
			t.Fatalf("the router exited before reading its configuration: %v\n%s", waitErr, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer w.Close()
	if _, err := w.WriteString("realms:\n  - name: realm1\n"); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("exit after a SIGTERM while reading the configuration: %v (want status 0)\n%s", waitErr, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a SIGTERM while run read its configuration from a pipe: still running 5 s later\n%s", out.String())
	}
	if !strings.Contains(out.String(), "stop signal while starting (reading the configuration)") || strings.Contains(out.String(), "edgewamp started") {
		t.Fatalf("the stop was not said, or the router started:\n%s", out.String())
	}
}
