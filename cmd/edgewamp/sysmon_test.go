package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSteadySysmonEnv(t *testing.T) {
	const ours = "GODEBUG=" + steadySysmonGODEBUG
	for _, k := range []struct {
		name string
		in   []string
		want []string // nil: no re-execution
	}{
		{"no GODEBUG", []string{"HOME=/x"}, []string{"HOME=/x", ours}},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{ours, "A=1"}},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1"}, []string{"GODEBUG=madvdontneed=1," + steadySysmonGODEBUG}},
		{"ours already", []string{"A=1", ours}, nil},
		{"the operator's own period", []string{"GODEBUG=gctrace=1, schedtrace=500"}, nil},
		{"the operator's zero", []string{"GODEBUG=schedtrace=0"}, nil},
		{"duplicate GODEBUG (Go reads the first)", []string{"GODEBUG=a=1", "GODEBUG=schedtrace=9"}, []string{"GODEBUG=a=1," + steadySysmonGODEBUG}},
	} {
		got := steadySysmonEnv(k.in)
		if !slices.Equal(got, k.want) || (got == nil) != (k.want == nil) {
			t.Errorf("%s: steadySysmonEnv(%q) = %q, want %q", k.name, k.in, got, k.want)
		}
	}
}

// procEnv reads a process's environment (as exec set it).
func procEnv(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// tuning.steady_sysmon: on re-executes the router once with
// GODEBUG=schedtrace (same process, the operator's other settings kept);
// auto without the mesh and off do not; an operator's own schedtrace is
// kept as it is. The mesh's auto is checked by TestMeshProcesses.
func TestSteadySysmonSetting(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []struct {
		mode, godebug string
		want          string // steady_sysmon in the log line
		wantDebug     string // the process's GODEBUG
	}{
		{"auto", "", "off", ""},
		{"off", "", "off", ""},
		{"on", "", "on", steadySysmonGODEBUG},
		{"on", "madvdontneed=1", "on", "madvdontneed=1," + steadySysmonGODEBUG},
		{"on", "schedtrace=0", "off", "schedtrace=0"},
	} {
		p := filepath.Join(dir, k.mode+".yaml")
		if err := os.WriteFile(p, []byte("tuning:\n  steady_sysmon: "+k.mode+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := routerCmd("-config", p)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
		if k.godebug != "" {
			cmd.Env = append(cmd.Env, "GODEBUG="+k.godebug)
		}
		r := launch(t, cmd)
		if line := grepLine(r.logs(), `msg="go runtime"`); !strings.Contains(line, "steady_sysmon="+k.want) {
			t.Fatalf("%s (GODEBUG %q): want steady_sysmon=%s in %q:\n%s", k.mode, k.godebug, k.want, line, r.logs())
		}
		var got string
		for _, kv := range procEnv(t, cmd.Process.Pid) {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				got = v
				break
			}
		}
		if got != k.wantDebug {
			t.Fatalf("%s (GODEBUG %q): the router runs with GODEBUG %q, want %q", k.mode, k.godebug, got, k.wantDebug)
		}
		if strings.Count(r.logs(), `msg="go runtime"`) != 1 {
			t.Fatalf("%s: the router started more than once:\n%s", k.mode, r.logs())
		}
	}
}

// A configuration read from a pipe (-config <(...)) cannot be read again
// by a re-executed process: the router starts once, without a steady
// sysmon, and says why (it used to exit with "the configuration is
// empty").
func TestSteadySysmonPipedConfig(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the router opens it
		if err != nil {
			return
		}
		defer f.Close()
		f.WriteString("tuning:\n  steady_sysmon: on\n")
	}()
	cmd := routerCmd("-config", fifo)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	r := launch(t, cmd)
	logs := r.logs()
	if line := grepLine(logs, `msg="go runtime"`); !strings.Contains(line, "steady_sysmon=off") {
		t.Fatalf("want steady_sysmon=off in %q:\n%s", line, logs)
	}
	if !strings.Contains(logs, "is a pipe, which the new process could not read again") {
		t.Fatalf("no warning naming the pipe:\n%s", logs)
	}
	if strings.Count(logs, `msg="go runtime"`) != 1 {
		t.Fatalf("the router started more than once:\n%s", logs)
	}
}

// grepLine returns the first line of logs containing s.
func grepLine(logs, s string) string {
	for l := range strings.Lines(logs) {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// A mesh node (tuning.steady_sysmon: auto, so on) re-executes itself
// through /proc/self/exe, which named the process "exe" (its comm, what
// ps, top, pgrep and ss -p show): it keeps its name, the binary's, on
// every thread.
func TestSteadySysmonKeepsProcessName(t *testing.T) {
	cmd := routerCmd("-node", "a", "-cluster-listen", "127.0.0.1:0")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	r := launch(t, cmd)
	if line := grepLine(r.logs(), `msg="go runtime"`); !strings.Contains(line, "steady_sysmon=on") {
		t.Fatalf("the mesh node did not re-execute for a steady sysmon: %q\n%s", line, r.logs())
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	want := filepath.Base(binPath)
	comm := func(f string) (string, error) {
		b, err := os.ReadFile(f)
		return strings.TrimSuffix(string(b), "\n"), err
	}
	if got, err := comm("/proc/" + pid + "/comm"); err != nil || got != want {
		t.Fatalf("the process is named %q (%v), want %q", got, err, want)
	}
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if got, err := comm("/proc/" + pid + "/task/" + task.Name() + "/comm"); err == nil && got != want { // err: the thread has gone
			t.Errorf("thread %s of %d is named %q, want %q", task.Name(), len(tasks), got, want)
		}
	}
}

// TestSteadySysmonStopDuringStart: a SIGTERM that reaches a mesh node
// while it reads its configuration, before it re-executes itself for a
// steady sysmon, ends the start (exit 0, as README says of a stop during
// the start). Before, the signal waited in the process's channel, which
// the execve dropped: the new process started and served, and systemd's
// stop waited for TimeoutStopSec before its SIGKILL. The configuration is
// made long to read (some 1.9 MB of origins) so that the signal lands in
// that window; one that lands before the process listens for it (it then
// dies of it) is sent again later.
func TestSteadySysmonStopDuringStart(t *testing.T) {
	var b strings.Builder
	b.WriteString("mesh: {node: a, cluster: {listen: \"127.0.0.1:0\"}}\nwebsocket:\n  allowed_origins:\n")
	for i := range 60000 {
		fmt.Fprintf(&b, "    - https://h%d.example.com\n", i)
	}
	cfg := writeFile(t, "big.yaml", b.String())
	for _, delay := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		cmd := exec.Command(binPath, "run", "-config", cfg, "-listen", "127.0.0.1:0", "-gateway-listen", "off")
		var out lockedBuffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGTERM)
		var err error
	wait:
		for deadline := time.Now().Add(15 * time.Second); ; {
			select {
			case err = <-done:
				break wait
			case <-time.After(20 * time.Millisecond):
			}
			if started := strings.Contains(out.String(), "edgewamp started"); started || time.Now().After(deadline) {
				cmd.Process.Kill()
				<-done
				t.Fatalf("a SIGTERM %v after the start was lost: the router started (%v) and still runs\n%s", delay, started, out.String())
			}
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			t.Logf("SIGTERM %v after the start came before the router listened for it; again later", delay)
			continue
		}
		if err != nil || strings.Contains(out.String(), "edgewamp started") || !strings.Contains(out.String(), "stop signal while starting") {
			t.Fatalf("a SIGTERM %v after the start: %v, want exit 0 without starting:\n%s", delay, err, out.String())
		}
		return
	}
	t.Skip("every SIGTERM came before the router listened for it")
}
