//go:build linux

package uring

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A send that parks is cancelled once Timeout has passed, not twice
// Timeout: the io_uring_enter that submits it also waits, and when it has
// submitted anything the kernel returns the number submitted instead of
// -ETIME (io_uring_enter: "if (!ret) ret = ret2"), so a Submit that waits
// for the next enter's -ETIME before cancelling stalls its loop for
// 2 × Timeout.
func TestParkedSendCancelledAfterOneTimeout(t *testing.T) {
	r := newRing(t, 8)
	if r.features&featExtArg == 0 {
		t.Skip("kernel without IORING_FEAT_EXT_ARG: no wait timeout")
	}
	const timeout = 500 * time.Millisecond
	r.Timeout = timeout
	sp := socketpair(t)
	fillSocket(t, sp[0])
	r.send(sp[0], []byte("parks"), unix.MSG_NOSIGNAL, 5) // no MSG_DONTWAIT: parks
	start := time.Now()
	done, err := r.Submit()
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Res != -int32(unix.ECANCELED) {
		t.Fatalf("completions %+v, want -ECANCELED", done)
	}
	t.Logf("cancelled after %v (Timeout %v), %d enters", took, timeout, r.Enters())
	// Without the fix it takes two full waits (>= 2 × Timeout) whatever
	// the load; with it one wait, and a loaded machine has 450 ms of slack.
	if took >= 2*timeout-timeout/10 {
		t.Fatalf("Submit returned after %v: the parked send was cancelled after about twice Timeout (%v), not once", took, timeout)
	}
}
