package route

import (
	"math"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// hugeTimeout is a timeout meant as "practically never" (2,500,000 h,
// 285 years): added to the clock in unix nanoseconds it passes the year
// 2262, where an int64 wraps.
const hugeTimeout = 2500000 * time.Hour

// TestHugeTimeoutsKeepTheirMeaning (found by the review of the command
// line and configuration): the HELLO timer and a call's deadline are the
// clock plus a Config's timeout in unix nanoseconds, which wrapped to a
// deadline in the past, so a HelloTimeout of 2500000h aborted sessions at
// once and a MaxCallTimeout of 2500000h timed every call out at once.
func TestHugeTimeoutsKeepTheirMeaning(t *testing.T) {
	t.Run("HelloTimeout", func(t *testing.T) {
		e := newEnv(t, 1, func(c *Config) { c.HelloTimeout = hugeTimeout })
		c := e.connect(proto.JSON)
		e.advance(time.Second)
		c.quiet()
		c.hello("realm1", allFeatures, nil)
		c.expect(proto.CodeWelcome)
	})
	t.Run("MaxCallTimeout", func(t *testing.T) {
		e := newEnv(t, 1, func(c *Config) { c.MaxCallTimeout = hugeTimeout })
		callee, caller := e.join(proto.JSON), e.join(proto.JSON)
		callee.register("com.slow", nil)
		for _, opt := range []map[string]any{nil, {"timeout": 1000}} {
			req := caller.call("com.slow", opt, nil, nil)
			inv := callee.expect(proto.CodeInvocation)
			e.advance(100 * time.Millisecond)
			caller.quiet()
			callee.quiet()
			callee.yield(inv.Request, nil, nil)
			if m := caller.expect(proto.CodeResult); m.Request != req {
				t.Fatalf("RESULT for %d, want %d", m.Request, req)
			}
		}
	})
}

func TestDeadlineAfterSaturates(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, tc := range []struct {
		t    int64
		d    time.Duration
		want int64
	}{
		{now, time.Second, now + int64(time.Second)},
		{now, 0, now},
		{now, hugeTimeout, math.MaxInt64},
		{now, math.MaxInt64, math.MaxInt64},
		{math.MaxInt64, time.Nanosecond, math.MaxInt64},
	} {
		if got := deadlineAfter(tc.t, tc.d); got != tc.want {
			t.Errorf("deadlineAfter(%d, %v) = %d, want %d", tc.t, tc.d, got, tc.want)
		}
	}
}
