package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// tuning.io_uring: the send path is chosen at start and logged; off keeps
// write(2); on refuses to start, saying why, where io_uring is blocked (a
// seccomp filter installed before exec, as Docker's default profile or a
// systemd SystemCallFilter= without @aio would), and auto falls back there.
func TestIOUringSetting(t *testing.T) {
	dir := t.TempDir()
	cfg := func(mode string) string {
		p := filepath.Join(dir, mode+".yaml")
		os.WriteFile(p, []byte("tuning:\n  io_uring: "+mode+"\n"), 0o600)
		return p
	}
	ioUring := uring.Probe() == nil

	r := startRouter(t, "-config", cfg("off"))
	if !strings.Contains(r.logs(), "send path: write(2)") {
		t.Fatalf("off: %s", r.logs())
	}
	if ioUring {
		r := startRouter(t, "-config", cfg("on"))
		if !strings.Contains(r.logs(), "send path: io_uring") {
			t.Fatalf("on: %s", r.logs())
		}
	} else {
		t.Logf("io_uring unavailable here (%v): the blocked cases below are what this system does", uring.Probe())
	}

	// Under a seccomp filter that blocks io_uring. With on the router
	// exits; with auto it runs, and is stopped once it listens.
	blocked := func(mode string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestIOUringSetting$")
		cmd.Env = append(os.Environ(), "EDGEWAMP_SECCOMP_EXEC="+strings.Join([]string{binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-config", cfg(mode)}, "\x1f"))
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case err := <-done:
				return out.String(), err
			case <-deadline:
				cmd.Process.Kill()
				<-done
				t.Fatalf("io_uring %s under seccomp: neither exited nor listened:\n%s", mode, out.String())
			case <-time.After(20 * time.Millisecond):
				if strings.Contains(out.String(), "msg=listening") {
					cmd.Process.Signal(syscall.SIGTERM)
					err := <-done
					return out.String(), err
				}
			}
		}
	}
	out, err := blocked("on")
	if strings.Contains(out, "cannot install a seccomp filter") {
		t.Skipf("no seccomp here: %s", out)
	}
	if err == nil || !strings.Contains(out, "io_uring is required") || !strings.Contains(out, "seccomp") {
		t.Fatalf("on, blocked: want a clear refusal to start, got %v:\n%s", err, out)
	}
	t.Logf("on, blocked: %v: %s", err, out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	out, _ = blocked("auto")
	if !strings.Contains(out, "send path: write(2): io_uring unavailable") || !strings.Contains(out, "msg=listening") {
		t.Fatalf("auto, blocked: want the write(2) path, logged with its reason:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// seccompExec runs in the child (TestMain calls it first when
// EDGEWAMP_SECCOMP_EXEC is set): it blocks io_uring for the process and
// what it executes, then becomes the edgewamp command line the variable
// holds (fields separated by 0x1f). It returns only on failure.
func seccompExec(cmdline string) {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "cannot install a seccomp filter: %s: %v\n", what, err)
		os.Exit(3)
	}
	argv := strings.Split(cmdline, "\x1f")
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("no_new_privs", err)
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_SETUP, Jt: 3},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_ENTER, Jt: 2},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_REGISTER, Jt: 1},
		ret(0x7fff0000),                      // SECCOMP_RET_ALLOW
		ret(0x00050000 | uint32(unix.EPERM)), // SECCOMP_RET_ERRNO
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC: every thread.
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, 1, 1, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		fail("seccomp", errno)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGEWAMP_SECCOMP_EXEC=") {
			env = append(env, kv)
		}
	}
	fail("exec", unix.Exec(argv[0], argv, env))
}

// tuning.park: auto leaves a router without the mesh waiting in epoll_wait
// (parking would only cost it system calls); on parks its loops, and says
// so at start (the mesh's case is TestMeshProcesses).
func TestParkSetting(t *testing.T) {
	dir := t.TempDir()
	const parked = "idle loops wait in Go's netpoller (park)"
	for _, k := range []struct {
		mode string
		want bool
	}{{"auto", false}, {"off", false}, {"on", true}} {
		p := filepath.Join(dir, k.mode+".yaml")
		os.WriteFile(p, []byte("tuning:\n  park: "+k.mode+"\n"), 0o600)
		r := startRouter(t, "-config", p)
		if got := strings.Contains(r.logs(), parked); got != k.want {
			t.Fatalf("park: %s: parked %v, want %v:\n%s", k.mode, got, k.want, r.logs())
		}
	}
}
