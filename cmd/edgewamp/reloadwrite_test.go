package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestReloadWaitsForConfigBeingWritten: a SIGHUP that comes while the
// configuration file is being written in place (cp over it, an editor or
// a tool that truncates and writes, here the same content again in
// chunks) reloads the file once it is written, not the part written so
// far. Before, the reload parsed the prefix it found, which is often valid
// YAML (a cut inside a comment, a value or at a line's end): here the last
// realm was missing from it, so its sessions were ended ("realm realm2
// was removed from the configuration") by a rewrite that changed nothing.
// A prefix can also open the router: one without `realms:` takes the
// embedded default's anonymous realm1, and a realm cut before `security:
// true` and its users is anonymous with every permission.
func TestReloadWaitsForConfigBeingWritten(t *testing.T) {
	var b strings.Builder
	b.WriteString("realms:\n  - name: realm1\n    anonymous: true\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "# padding %04d: a file long enough to be written in several chunks\n", i)
	}
	b.WriteString("  - name: realm2\n    anonymous: true\n")
	content := []byte(b.String())
	path := writeFile(t, "c.yaml", string(content))
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + r.addr, Realm: "realm2", Serializer: proto.MsgPack})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// The same content again, written in place in 50 chunks 10 ms apart,
	// the SIGHUP after the first.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	const chunks = 50
	step := len(content)/chunks + 1
	for i := 0; i < len(content); i += step {
		if _, err := f.Write(content[i:min(i+step, len(content))]); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.logs(), "SIGHUP: configuration") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := r.logs()
	if !strings.Contains(logs, "SIGHUP: configuration reloaded") {
		t.Fatalf("no reload within 15 s:\n%s", lastLines(logs, 10))
	}
	if strings.Contains(logs, "was removed from the configuration") {
		t.Fatalf("a reload while the file was being rewritten with the same content removed realm2:\n%s", grepLines(logs, "removed"))
	}
	if _, err := s.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("realm2's session after the reload: %v\n%s", err, lastLines(logs, 10))
	}
}

// TestStopDuringReloadWaitForConfig: a SIGTERM while a reload waits for
// the configuration file to be written (TestReloadWaitsForConfigBeingWritten)
// ends that wait: the reload is refused, saying why, and the stop goes on
// at once. Before, the stop waited for the reload's wait to end (up to
// configSettleMax, 2 s, on top of a stop that may take 20 s of systemd's
// TimeoutStopSec=20s).
func TestStopDuringReloadWaitForConfig(t *testing.T) {
	content := "realms:\n  - name: realm1\n    anonymous: true\n"
	path := writeFile(t, "c.yaml", content)
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	// A file that goes on changing (a comment line appended every 10 ms)
	// until the router has gone.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	writerDone := make(chan struct{})
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
	time.Sleep(100 * time.Millisecond) // the reload waits for the file (2 s at most)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the router still runs 15 s after SIGTERM\n%s", lastLines(r.logs(), 10))
	}
	// A reload a stop interrupts is no error: one line, INFO or WARN, that
	// names the stop and does not say "refused" (before: ERROR
	// "SIGHUP: configuration refused; keeping the running one").
	lines := grepLines(r.logs(), "SIGHUP")
	if !strings.Contains(lines, "stop signal") || strings.Contains(lines, "refused") || strings.Contains(lines, "level=ERROR") {
		t.Fatalf("the reload the stop interrupted, logged:\n%s", lines)
	}
}

// TestSIGHUPDuringDrainLogged: a SIGHUP that comes while the router stops
// (here during the drain, held by a call its callee does not answer) is not
// reloaded, and says so once, at INFO. Before, it was dropped without a
// line: the operator's reload seemed to have been taken.
func TestSIGHUPDuringDrainLogged(t *testing.T) {
	path := writeFile(t, "drainhup.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\nshutdown:\n  drain_timeout: 2s\n")
	r := launch(t, exec.Command(binPath, "run", "-config", path))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := r.dial("rs://"+r.addr, proto.MsgPack)
	defer callee.Close()
	held := make(chan struct{}, 1)
	if _, err := callee.Register(ctx, "com.never", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		held <- struct{}{}
		<-ictx.Done()
		return nil, ictx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := r.dial("rs://"+r.addr, proto.JSON)
	defer caller.Close()
	go caller.Call(ctx, "com.never", nil, nil, nil)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the call did not reach the callee")
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitLog("shutting down", 1)
	for i := 0; i < 3; i++ {
		if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the router still runs 20 s after SIGTERM\n%s", lastLines(r.logs(), 10))
	}
	lines := grepLines(r.logs(), "SIGHUP")
	if n := strings.Count(lines, "SIGHUP"); n != 1 || !strings.Contains(lines, "level=INFO") {
		t.Fatalf("%d lines for three SIGHUPs during the drain, want one at INFO:\n%s", n, lines)
	}
}

// TestReloadOfATouchedConfig: a file whose modification time keeps
// moving while its content does not (touched every 100 ms here: an
// agent's run, a sync tool setting times) is reloaded once its content
// has stayed the same for the quiet time. Before, the quiet wait (5cdfd83)
// watched the modification time only: such a file was never quiet, and
// every SIGHUP was refused after 2 s as "went on changing".
func TestReloadOfATouchedConfig(t *testing.T) {
	path := writeFile(t, "c.yaml", "realms:\n  - name: realm1\n    anonymous: true\n")
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0"))
	next := path + ".new"
	if err := os.WriteFile(next, []byte("realms:\n  - name: realm1\n    anonymous: true\n  - name: realm2\n    anonymous: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				now := time.Now()
				_ = os.Chtimes(path, now, now)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.logs(), "SIGHUP: configuration") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if logs := r.logs(); !strings.Contains(logs, "SIGHUP: configuration reloaded") {
		t.Fatalf("a file touched every 100 ms, its content unchanged: not reloaded:\n%s", grepLines(logs, "SIGHUP"))
	}
}
