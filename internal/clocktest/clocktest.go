// Package clocktest makes the readings of a stepped system clock for the
// tests of the packages whose timers follow the monotonic clock (loop,
// route, edge, client, gateway, oauth): what time.Now reads after an NTP
// step or `date -s`, its wall clock moved and its monotonic reading kept.
// For tests only.
package clocktest

import (
	"testing"
	"time"
	"unsafe"
)

// WallStepped returns t, a reading of time.Now, with its wall clock moved
// by d (whole seconds) and its monotonic reading kept: what time.Now reads
// after the system clock is stepped by d. No exported API makes such a
// value (Add moves both readings, Round(0) drops the monotonic one), so it
// writes time.Time's fields: wall holds the hasMonotonic flag, 33 bits of
// seconds since 1885 and 30 bits of nanoseconds; ext the monotonic
// reading. A t without a monotonic reading is moved by Add.
// SkipUnlessSteppable skips a test whose toolchain lays time.Time out
// otherwise.
func WallStepped(t time.Time, d time.Duration) time.Time {
	const hasMonotonic, nsecBits = 1 << 63, 30
	p := (*struct {
		wall uint64
		ext  int64
		loc  *time.Location
	})(unsafe.Pointer(&t))
	if p.wall&hasMonotonic == 0 {
		return t.Add(d)
	}
	sec := int64(p.wall<<1>>(nsecBits+1)) + int64(d/time.Second)
	p.wall = hasMonotonic | uint64(sec)<<nsecBits | p.wall&(1<<nsecBits-1)
	return t
}

// SkipUnlessSteppable skips t when WallStepped cannot model a stepped
// clock with this toolchain's time.Time.
func SkipUnlessSteppable(t testing.TB) {
	t0 := time.Now()
	s := WallStepped(t0, time.Hour)
	if s.Sub(t0) != 0 || s.Round(0).Sub(t0.Round(0)) != time.Hour {
		t.Skip("time.Time is laid out otherwise: WallStepped cannot model a stepped clock")
	}
}
