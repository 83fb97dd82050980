package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A steady sysmon (tuning.steady_sysmon): keep the Go runtime's system
// monitor out of its deep sleep on a mesh node.
//
// sysmon is the runtime's thread that takes processors back from system
// calls and preempts long-running goroutines. When every processor is
// idle it sleeps until the next system call wakes it, and, woken that
// way, it bets that it will have to take a processor back soon: it polls
// every 20 µs again, for at least 1 ms, before it slows down. A router
// alone rarely goes idle under load (its event loop blocks in epoll_wait
// holding its processor). A mesh node does: its loops park (loop/park.go)
// and its NATS goroutines finish their work, thousands of times a second,
// and each time the next system call (a socket read) wakes sysmon into
// 20 µs polling: a futex wake-up, and a thread that wakes 50 times a
// millisecond on the node's CPU and hands the processor between threads.
// On this machine it cost the nodes 16 % of their CPU per cross-node
// call (37.0 against 31.2 µs) and 16 % of the calls/s (bench/history.md,
// "sysmon's 20 µs polling").
//
// The runtime has one switch that keeps sysmon out of deep sleep:
// GODEBUG=schedtrace=N (sysmon then never deep-sleeps, so that it can
// print the trace every N ms), read only when the process starts. So a
// mesh node whose GODEBUG has no schedtrace re-executes itself once, at
// start, with schedtrace set to its largest value, 2^31-1 ms (24.8
// days): sysmon then sleeps up to 10 ms at a time between checks
// instead, and prints one line of scheduler figures ("SCHED ...") every
// 24.8 days of uptime (and at start when the host has been up longer).
// A fatal error also prints the scheduler's state with its traceback.
//
// An idle mesh node costs the same CPU either way (0.6-0.8 % here): a
// sysmon polling every 10 ms replaces one woken by every timer the node
// runs anyway.

// steadySysmonGODEBUG is the GODEBUG setting that keeps sysmon steady.
const steadySysmonGODEBUG = "schedtrace=2147483647"

// reexecAllowed is set by main: only the edgewamp process itself
// re-executes, never a test binary calling run.
var reexecAllowed bool

// godebugValue returns the value a GODEBUG string gives key (Go reads
// the last one), and whether it gives one.
func godebugValue(godebug, key string) (string, bool) {
	val, found := "", false
	for f := range strings.SplitSeq(godebug, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(f), "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// steadySysmonEnv returns the environment to re-execute with for a steady
// sysmon, or nil when environ's GODEBUG already sets schedtrace (ours
// after the re-execution, or the operator's own, which is kept, even 0).
func steadySysmonEnv(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if found {
				continue // a duplicate: Go reads the first
			}
			if _, set := godebugValue(v, "schedtrace"); set {
				return nil
			}
			found = true
			if strings.TrimSpace(v) != "" {
				kv += ","
			}
			kv += steadySysmonGODEBUG
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+steadySysmonGODEBUG)
	}
	return out
}

// steadySysmon re-executes the process for a steady sysmon when c wants
// one and the runtime started without it. It returns only when it does
// not re-execute: nil when there is nothing to do, or why it could not
// (the router then runs with Go's default sysmon). cfgPath is -config's
// value: the new process reads it again, which a pipe (-config <(...),
// /dev/stdin) cannot give twice, so it does not re-execute for one.
// stopped reports whether a stop signal has arrived (signals.stopped),
// asked just before the execve, which would drop it: it then returns
// errStoppedStarting and does not re-execute.
func steadySysmon(c *config, cfgPath string, stopped func() bool) error {
	if !reexecAllowed || !c.withMesh(c.Tuning.SteadySysmon) {
		return nil
	}
	env := steadySysmonEnv(os.Environ())
	if env == nil {
		return nil
	}
	if err := rereadable(cfgPath); err != nil {
		return err
	}
	// /proc/self/exe is the running binary, even if a package upgrade
	// replaced (deleted) its file since: execve follows the link to the
	// inode. os.Executable would name the new file instead; it is only
	// the fallback where /proc is not mounted.
	exe := "/proc/self/exe"
	// SIGHUP ignored across the execve (an ignored signal stays ignored
	// in the new image, until its Notify): until then Go's default action
	// for a SIGHUP (a reload asked for while the router starts) would end
	// the new process. The caller notifies again if this returns.
	signal.Ignore(syscall.SIGHUP)
	// A SIGINT or SIGTERM that came while the configuration was read
	// waits in the process's channel, which the execve drops: the new
	// process started and served, and a stop during the start (systemd's,
	// a restart's) waited for TimeoutStopSec and its SIGKILL.
	if stopped() {
		return errStoppedStarting
	}
	err := syscall.Exec(exe, os.Args, env)
	if errors.Is(err, syscall.ENOENT) {
		if alt, aerr := os.Executable(); aerr == nil {
			exe = alt
			err = syscall.Exec(exe, os.Args, env)
		}
	}
	return fmt.Errorf("steady sysmon: re-executing %s: %w", exe, err)
}

// errStoppedStarting is steadySysmon's answer when a stop signal came
// before it re-executed.
var errStoppedStarting = errors.New("stop signal while starting")

// The re-executed process's name. The kernel names a process (its comm:
// /proc/PID/comm, what ps, top, pgrep and ss -p show) after the last
// element of the path it was executed from, so re-executing
// /proc/self/exe names it "exe". A path that ends in the binary's own
// name would be the file on disk, which a package upgrade may have
// replaced since the process started (and /proc/self/fd/N ends in N):
// the process is re-executed from /proc/self/exe still, and takes its
// name back itself, in init, before main runs.
func init() { restoreProcessName() }

// restoreProcessName names the process after its argv[0] (what the
// kernel named it before the re-execution: the same path's last element,
// at most 15 bytes) when its name is "exe", as a re-execution through
// /proc/self/exe left it. The runtime runs the main package's init on
// the main thread, whose name is the process's (PR_SET_NAME); the threads
// the runtime has started by then were named "exe" too, and the threads
// it starts later copy the name of the thread that starts them, so each
// is renamed through /proc/self/task, again until a pass finds none left
// (one may start meanwhile).
func restoreProcessName() {
	var cur [16]byte
	if unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&cur[0])), 0, 0, 0) != nil || unix.ByteSliceToString(cur[:]) != "exe" || len(os.Args) == 0 {
		return
	}
	name := filepath.Base(os.Args[0])
	if len(name) > 15 {
		name = name[:15] // as the kernel cuts it
	}
	if name == "exe" || name == "." || name == "/" {
		return
	}
	b := append([]byte(name), 0)
	if unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0) != nil {
		return
	}
	for range 10 {
		if renameThreads(name) == 0 {
			return
		}
	}
}

// renameThreads names every thread of the process that is not yet named
// name, and returns how many it renamed.
func renameThreads(name string) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	n := 0
	for _, t := range tasks {
		f := "/proc/self/task/" + t.Name() + "/comm"
		if b, err := os.ReadFile(f); err != nil || strings.TrimSuffix(string(b), "\n") == name {
			continue
		}
		if os.WriteFile(f, []byte(name), 0) == nil {
			n++
		}
	}
	return n
}

// rereadable reports why the configuration at path (none: the embedded
// default) could not be read again by a re-executed process.
func rereadable(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("steady sysmon: -config %s: %w", path, err)
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	kind := "not a regular file"
	switch m := fi.Mode(); {
	case m&os.ModeNamedPipe != 0:
		kind = "a pipe"
	case m&os.ModeCharDevice != 0:
		kind = "a character device"
	case m&os.ModeSocket != 0:
		kind = "a socket"
	}
	return fmt.Errorf("steady sysmon: not re-executing: -config %s is %s, which the new process could not read again; use a file, or start edgewamp with GODEBUG=%s", path, kind, steadySysmonGODEBUG)
}

// steadySysmonState is the "go runtime" log line's steady_sysmon: on when
// the runtime started with a schedtrace period (ours, or the operator's
// own), off otherwise.
func steadySysmonState() string {
	if v, _ := godebugValue(os.Getenv("GODEBUG"), "schedtrace"); v != "" && v != "0" && !strings.HasPrefix(v, "-") {
		return "on"
	}
	return "off"
}
