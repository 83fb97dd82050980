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

// TestStopCuttingReloadKeepsRefusedPairInStatus: a reload that refused a
// TLS pair and was then cut short by a stop signal (while it waited for
// the next pair, being written) says the refusal in systemd's STATUS, as
// a reload that ends does ("last reload refused: TLS certificate").
// Before, a reload a stop cut returned no error at all: STATUS said
// nothing of the pair refused, which only the log named.
func TestStopCuttingReloadKeepsRefusedPairInStatus(t *testing.T) {
	dir := t.TempDir()
	c1, k1 := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	c2, k2 := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	writePair(t, c1, k1, 1)
	writePair(t, c2, k2, 2)
	cfg := writeFile(t, "twotls.yaml", fmt.Sprintf("listeners:\n  - {address: \"127.0.0.1:0\", tls: {cert: %q, key: %q}}\n  - {address: \"127.0.0.1:0\", tls: {cert: %q, key: %q}}\nrealms: [{name: realm1}]\n", c1, k1, c2, k2))
	ns := newNotifySocket(t)
	cmd := exec.Command(binPath, "run", "-config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path)
	r := launch(t, cmd)
	ns.await("READY", "1", 10*time.Second)

	// The first pair refused: another key's certificate over its own.
	other := filepath.Join(dir, "other")
	writePair(t, other+".crt", other+".key", 3)
	b, err := os.ReadFile(other + ".crt")
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, c1, b)
	time.Sleep(300 * time.Millisecond) // quiet (configQuiet: 200 ms)
	// The second pair's certificate goes on being written (a line
	// appended every 10 ms) until the router has gone.
	f, err := os.OpenFile(c2, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop, writerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			fmt.Fprintf(f, "# line %d\n", i)
		}
	}()
	defer func() { close(stop); <-writerDone }()
	time.Sleep(50 * time.Millisecond)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog("SIGHUP: TLS certificate refused", 1)
	time.Sleep(100 * time.Millisecond) // the reload waits for the second pair (2 s at most)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, lastLines(r.logs(), 10))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM\n%s", lastLines(r.logs(), 10))
	}
	var statuses []string
	for {
		select {
		case m, ok := <-ns.msgs:
			if ok {
				if s, has := m.lines["STATUS"]; has {
					statuses = append(statuses, s)
				}
				continue
			}
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	for _, s := range statuses {
		if strings.Contains(s, "last reload refused: TLS certificate") {
			return
		}
	}
	t.Fatalf("no STATUS after the reload names the TLS pair it refused:\n%s\nlog:\n%s", strings.Join(statuses, "\n"), grepLines(r.logs(), "SIGHUP"))
}
