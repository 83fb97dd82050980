//go:build linux

package uring

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// freeSlots checks the free list after a Submit: every slot once, none
// busy, no buffer held, except the slots in kept (lost by a failed ring:
// the kernel may still read their buffers).
func freeSlots(t *testing.T, r *Ring, kept map[uint64]bool) {
	t.Helper()
	seen := map[uint32]bool{}
	for _, id := range r.free {
		if seen[id] {
			t.Fatalf("slot %d twice on the free list %v", id, r.free)
		}
		seen[id] = true
	}
	held := 0
	for id := range r.slots {
		s := &r.slots[id]
		switch {
		case s.busy:
			t.Fatalf("slot %d still busy after Submit: %+v", id, *s)
		case kept[s.tag] && s.buf != nil:
			held++
			if seen[uint32(id)] {
				t.Fatalf("slot %d holds a lost send's buffer and is free", id)
			}
		case !seen[uint32(id)]:
			t.Fatalf("slot %d neither free nor a lost send's: %+v", id, *s)
		}
	}
	if held != len(kept) || cap(r.free) != r.Cap() {
		t.Fatalf("%d lost sends' buffers held, want %d; free list capacity %d, want %d", held, len(kept), cap(r.free), r.Cap())
	}
}

// ioWait bounds the test's waits for the kernel.
const ioWait = 10 * time.Second

// Slots are freed as their completions are reaped (639089c): after
// Submits mixing sends, a receive and a parked send cancelled at Timeout,
// every slot is free once, and the ring takes Cap sends again; after a
// ring fails with a send taken and not completed, that send's slot keeps
// its buffer and is not freed, and the sends completed before the failure
// are.
func TestSlotsFreedAsReaped(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		r := newRing(t, 8)
		if r.features&featExtArg == 0 {
			t.Skip("kernel without IORING_FEAT_EXT_ARG: no wait timeout")
		}
		r.Timeout = 50 * time.Millisecond
		full, sp := socketpair(t), socketpair(t)
		fillSocket(t, full[0])
		in := make([]byte, 8)
		for round := 0; round < 3; round++ {
			r.Send(sp[0], []byte("a"), 1)
			r.send(full[0], []byte("parks"), unix.MSG_NOSIGNAL, 2)
			r.Send(sp[0], []byte("b"), 3)
			r.Recv(sp[1], in, 4)
			done, err := r.Submit()
			if err != nil || len(done) != 4 {
				t.Fatalf("round %d: %+v %v", round, done, err)
			}
			freeSlots(t, r, nil)
		}
		for i := 0; i < r.Cap(); i++ {
			if !r.Send(sp[0], []byte("c"), uint64(i)) {
				t.Fatalf("send %d of %d refused", i, r.Cap())
			}
		}
		if done, err := r.Submit(); err != nil || len(done) != r.Cap() {
			t.Fatalf("%d completions, %v", len(done), err)
		}
		freeSlots(t, r, nil)
	})
	t.Run("fail", func(t *testing.T) {
		r := newRing(t, 8)
		r.Timeout = 0 // wait for the parked send without a bound
		full, sp := socketpair(t), socketpair(t)
		fillSocket(t, full[0])
		r.Send(sp[0], []byte("a"), 1)
		r.send(full[0], []byte("parks"), unix.MSG_NOSIGNAL, 2)
		r.Send(sp[0], []byte("b"), 3)
		tid := make(chan int, 1)
		type result struct {
			done []Completion
			err  error
		}
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid <- unix.Gettid()
			d, err := r.Submit()
			res <- result{append([]Completion(nil), d...), err}
		}()
		id := <-tid
		// The enter has run once the other two sends are read.
		got := make([]byte, 2)
		for n := 0; n < 2; {
			pfd := []unix.PollFd{{Fd: int32(sp[1]), Events: unix.POLLIN}}
			if k, err := unix.Poll(pfd, int(ioWait/time.Millisecond)); err != nil && err != unix.EINTR || k == 0 {
				t.Fatalf("the completed sends not read: %v", err)
			}
			if k, err := unix.Read(sp[1], got[n:]); err == nil {
				n += k
			}
		}
		null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Dup2(null, r.fd); err != nil { // the next enter fails
			t.Fatal(err)
		}
		unix.Close(null)
		var out result
		for out.done == nil && out.err == nil {
			unix.Tgkill(unix.Getpid(), id, unix.SIGURG) // ends the wait: EINTR, then the failing enter
			select {
			case out = <-res:
			case <-time.After(10 * time.Millisecond):
			}
		}
		if out.err == nil {
			t.Fatal("Submit returned no error")
		}
		want := map[uint64]int32{1: 1, 2: -int32(unix.EIO), 3: 1}
		if len(out.done) != len(want) {
			t.Fatalf("completions %+v, want %v", out.done, want)
		}
		for _, c := range out.done {
			if want[c.Tag] != c.Res {
				t.Fatalf("completions %+v, want %v", out.done, want)
			}
		}
		freeSlots(t, r, map[uint64]bool{2: true})
	})
}
