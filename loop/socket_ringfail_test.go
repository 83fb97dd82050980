package loop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A ring whose io_uring_enter starts failing while the router runs: the
// loop goes on with write(2) and its peers get every event, whatever the
// error. A child process (the filter cannot be taken back) starts a
// one-loop engine on io_uring, fans events out to three subscribers
// through the ring, then installs a seccomp filter under which every
// io_uring_enter fails with the errno named, and fans out more. EPERM (a
// hard failure) broke the ring at once; EAGAIN and EBUSY, which the
// kernel returns while it is short of resources, were retried without
// bound: the loop spun in io_uring_enter and served none of its
// connections again. They are retried for the ring's Timeout (1 s) now,
// then the ring breaks as for any other error.
func TestRingEnterFailingFallsBack(t *testing.T) {
	if v := os.Getenv("EDGEWAMP_RINGFAIL_CHILD"); v != "" {
		ringFailChild(t, v)
		return
	}
	needRing(t)
	for _, errno := range []string{"EAGAIN", "EBUSY", "EPERM"} {
		t.Run(errno, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestRingEnterFailingFallsBack$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "EDGEWAMP_RINGFAIL_CHILD="+errno, "EDGEWAMP_TEST_IO_URING=")
			cmd.WaitDelay = time.Second
			out, err := cmd.CombinedOutput()
			if strings.Contains(string(out), "--- SKIP") {
				t.Skipf("child skipped: %s", out)
			}
			if err != nil || !strings.Contains(string(out), "--- PASS") {
				t.Fatalf("child (io_uring_enter failing with %s): %v\n%s", errno, err, out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "fell back") {
					t.Log(strings.TrimSpace(l))
				}
			}
		})
	}
}

// failIOUringEnter makes every io_uring_enter of the process fail with
// errno from now on (a seccomp filter on every thread).
func failIOUringEnter(errno unix.Errno) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	const seccompRetErrno, seccompRetAllow = 0x00050000, 0x7fff0000
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_IO_URING_ENTER, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: seccompRetErrno | uint32(errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: seccompRetAllow},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	const setModeFilter, flagTsync = 1, 1
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTsync, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}

func ringFailChild(t *testing.T, name string) {
	errno := map[string]unix.Errno{"EAGAIN": unix.EAGAIN, "EBUSY": unix.EBUSY, "EPERM": unix.EPERM}[name]
	if errno == 0 {
		t.Fatalf("unknown errno %q", name)
	}
	// A loop that never comes back cannot be shut down: end the child.
	watchdog := time.AfterFunc(8*time.Second, func() {
		fmt.Printf("--- FAIL: the loop served nothing for 8 s after io_uring_enter began failing with %s\n", name)
		os.Exit(3)
	})
	defer watchdog.Stop()
	var logs strings.Builder
	var mu sync.Mutex
	s := startRingServer(t, func(o *Options, rc *route.Config) {
		rc.Shards = 1 // every connection on the one loop
		o.Logger = newTestLogger(&lockedWriter{w: &logs, mu: &mu})
	})
	const topic = "com.ring.fail"
	subs := subscribeMany(t, s.url, 3, topic)
	pub := dialRaw(t, s.url, "rs", proto.JSON)
	pw := newWAMP(t, pub.mc, proto.JSON)
	pw.join()
	publish := func(i int) {
		pub.c.Write(pub.data(pw.publishMsg(pw.nextReq(), topic, []any{i}, true)))
		pw.expect(proto.CodePublished)
		for k, sub := range subs {
			if got := eventSeq(t, sub.readMsg(t, proto.MsgPack)); got != i {
				t.Fatalf("subscriber %d: event %d, want %d", k, got, i)
			}
		}
	}
	// The ring carries the fan-outs (a round's flush of the four
	// connections), unless the adaptive policy wrote one connection at a
	// time: publish until it has.
	n := 0
	for ; n < 20 && s.e.Stats().RingSends == 0; n++ {
		publish(n)
	}
	if s.e.Stats().RingSends == 0 {
		t.Fatalf("%d fan-outs, none through the ring", n)
	}
	if err := failIOUringEnter(errno); err != nil {
		t.Skipf("cannot install a seccomp filter here: %v", err)
	}
	start := time.Now()
	publish(n)
	took := time.Since(start)
	for i := n + 1; i < n+4; i++ {
		publish(i)
	}
	mu.Lock()
	log := logs.String()
	mu.Unlock()
	if !strings.Contains(log, "io_uring ring failed") {
		t.Fatalf("the ring's failure is not logged:\n%s", log)
	}
	if f := s.e.Stats().RingFailures; f != 1 {
		t.Fatalf("%d ring failures counted, want 1", f)
	}
	t.Logf("io_uring_enter failing with %s: the loop fell back to write(2) in %v", name, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("the fan-out took %v after io_uring_enter began failing", took)
	}
}
