package route

import (
	"strconv"
	"testing"
	"time"
)

// TestAuthLimiterWindowEdge: failures are counted over a sliding window,
// not a fixed one that starts at an address's first failure: nine
// failures at the end of a window and nine at the start of the next (18
// within two seconds) lock the authid out after at most two of the
// second nine. Before, the count started again at the window's end, and
// 18 (2 × (block_after − 1)) were checked in two seconds without a
// lockout. Failures spread at the rate the limit allows (one every 7 s,
// under 10 a minute) still never lock out; the address's spraying count
// slides the same way.
func TestAuthLimiterWindowEdge(t *testing.T) {
	const block = 10
	l := testLimiter(t, AuthLimits{BlockAfter: block, AddressBlockAfter: 1000, DelayAfter: 100})
	t0 := time.Unix(1e9, 0)
	key := l.keys("192.0.2.70", "", "joe")
	fail := func(at time.Time) lockKind {
		t.Helper()
		if v := l.reserve(key, at, &authWait{fire: func(bool) {}}); v != granted {
			return lockAuthID // refused unchecked: locked out
		}
		_, lock := l.settle(key, true, true, at)
		return lock
	}
	if fail(t0) != lockNone {
		t.Fatal("locked out at the first failure")
	}
	for i := range 8 {
		if lock := fail(t0.Add(59*time.Second + time.Duration(i)*time.Millisecond)); lock != lockNone {
			t.Fatalf("locked out at failure %d of the first window", i+2)
		}
	}
	locked := 0
	for i := range 9 {
		if fail(t0.Add(61*time.Second+time.Duration(i)*time.Millisecond)) != lockNone {
			locked = i + 1
			break
		}
	}
	if locked == 0 || locked > 2 {
		t.Fatalf("9 failures at a window's end, then 9 at the next one's start: locked out at the second nine's failure %d, want 1 or 2", locked)
	}

	// One failure every 7 s, 8.6 a minute: never locked out.
	slow := l.keys("192.0.2.71", "", "ann")
	for i := range 60 {
		at := t0.Add(time.Duration(i) * 7 * time.Second)
		if v := l.reserve(slow, at, &authWait{fire: func(bool) {}}); v != granted {
			t.Fatalf("failure %d at one every 7 s: refused (%v)", i+1, v)
		}
		if _, lock := l.settle(slow, true, true, at); lock != lockNone {
			t.Fatalf("failure %d at one every 7 s locked out (%v)", i+1, lock)
		}
	}

	// The address's count (spraying: a new authid each) slides too.
	la := testLimiter(t, AuthLimits{BlockAfter: 10, AddressBlockAfter: 20, DelayAfter: 100})
	addrLocked := false
	for i := range 19 {
		la.settle(la.keys("192.0.2.72", "", "u"+strconv.Itoa(i)), false, true, t0.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range 19 {
		at := t0.Add(61*time.Second + time.Duration(i)*time.Millisecond)
		if _, lock := la.settle(la.keys("192.0.2.72", "", "v"+strconv.Itoa(i)), false, true, at); lock == lockAddress {
			addrLocked = true
			break
		}
	}
	if !addrLocked {
		t.Fatal("19 failures of an address then 19 more 61 s later: the address was not locked out")
	}
}
