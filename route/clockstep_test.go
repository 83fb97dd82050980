package route

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
	"github.com/edgewamp/edgewamp/proto"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// stepClock is a fake clock whose readings are time.Now's kind: with a
// monotonic reading, which advance moves (with the wall clock), and a wall
// clock that step moves alone, as a step of the system clock does.
type stepClock struct {
	base time.Time // a time.Now reading (monotonic)
	adv  atomic.Int64
	step atomic.Int64
}

func newStepClock() *stepClock { return &stepClock{base: time.Now()} }

func (c *stepClock) now() time.Time {
	return wallStepped(c.base.Add(time.Duration(c.adv.Load())), time.Duration(c.step.Load()))
}

// newStepEnv is newEnv on a stepClock; advance moves it and runs the
// timers.
func newStepEnv(t *testing.T, mutate func(*Config)) (*env, *stepClock, func(time.Duration)) {
	checkWallStepped(t)
	clk := newStepClock()
	e := newEnv(t, 1, func(c *Config) {
		c.Now = clk.now
		if mutate != nil {
			mutate(c)
		}
	})
	return e, clk, func(d time.Duration) {
		clk.adv.Add(int64(d))
		e.r.Tick(time.Second)
		e.sync()
	}
}

// The router's timers follow the monotonic clock, not the wall clock: a
// step of the system clock (NTP's first sync on a board without a
// real-time clock, which the unit does not wait for; date -s; a VM
// resumed) neither fires every deadline at once nor holds them off for
// the step's length. Before, Router.now was Config.Now's UnixNano: stepped
// forward an hour, every pending call failed with wamp.error.timeout and
// every connection waiting for its HELLO was aborted at the next tick;
// stepped back an hour, no call timed out and no HELLO timeout fired for
// that hour (nor did a GOODBYE or authentication-delay timer, a budget
// refill or a log limiter's window move).
func TestTimersIgnoreWallClockSteps(t *testing.T) {
	const hour = int64(time.Hour)
	cfg := func(c *Config) { c.CallTimeout, c.HelloTimeout = 10*time.Second, 10*time.Second }

	t.Run("call/forward", func(t *testing.T) {
		t.Parallel()
		e, clk, advance := newStepEnv(t, cfg)
		callee, caller := e.join(proto.JSON), e.join(proto.JSON)
		callee.register("com.slow", nil)
		req := caller.call("com.slow", nil, nil, nil)
		callee.expect(proto.CodeInvocation)
		clk.step.Store(hour)
		advance(time.Second)
		caller.quiet()
		advance(10 * time.Second)
		caller.expectError(proto.CodeCall, req, proto.URITimeout)
	})
	t.Run("call/back", func(t *testing.T) {
		t.Parallel()
		e, clk, advance := newStepEnv(t, cfg)
		callee, caller := e.join(proto.JSON), e.join(proto.JSON)
		callee.register("com.slow", nil)
		req := caller.call("com.slow", nil, nil, nil)
		callee.expect(proto.CodeInvocation)
		clk.step.Store(-hour)
		advance(11 * time.Second)
		caller.expectError(proto.CodeCall, req, proto.URITimeout)
	})
	t.Run("hello/forward", func(t *testing.T) {
		t.Parallel()
		e, clk, advance := newStepEnv(t, cfg)
		c := e.connect(proto.JSON)
		clk.step.Store(hour)
		advance(time.Second)
		c.quiet()
		c.hello("realm1", allFeatures, nil)
		c.expect(proto.CodeWelcome)
	})
	t.Run("hello/back", func(t *testing.T) {
		t.Parallel()
		e, clk, advance := newStepEnv(t, cfg)
		c := e.connect(proto.JSON)
		clk.step.Store(-hour)
		advance(11 * time.Second)
		if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIProtocolViolation {
			t.Fatalf("ABORT %s", m.URI)
		}
	})
}

// The login limiter's windows and lockouts follow the monotonic clock: a
// step of the system clock forward neither lifts a lockout nor forgets the
// failures in the window, and a step back does not hold a lockout for the
// step's length. Before, the limiter read Config.Now's UnixNano: stepped
// forward an hour, a locked-out authid was checked again at once (and a
// guesser got BlockAfter more tries at each step); stepped back an hour,
// a device with a fixed secret stayed locked out for that hour plus the
// 5-minute lockout.
func TestLoginLockoutIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	const nat = "192.0.2.20:1"
	hello := func(e *env) *proto.Message {
		c := e.connectFrom(0, proto.JSON, nat)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
		return c.recv()
	}
	lockedOut := func(t *testing.T, step time.Duration) (*env, *stepClock) {
		clk := newStepClock()
		e, _ := secureEnv(t, func(c *Config) { c.Now, c.AuthLimits.DelayAfter = clk.now, 100 })
		for i := range DefaultAuthBlockAfter {
			c := e.connectFrom(i%2, proto.JSON, nat)
			if m := c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return "stale" }); string(m.URI) != proto.URIAuthenticationFailed {
				t.Fatalf("failure %d: %v %s", i, m.Type, m.URI)
			}
		}
		e.sync()
		if m := hello(e); m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationDenied {
			t.Fatalf("HELLO after %d failures: %v %s, want ABORT %s", DefaultAuthBlockAfter, m.Type, m.URI, proto.URIAuthenticationDenied)
		}
		clk.step.Store(int64(step))
		return e, clk
	}

	t.Run("forward", func(t *testing.T) {
		t.Parallel()
		e, clk := lockedOut(t, time.Hour)
		clk.adv.Add(int64(time.Second))
		if m := hello(e); m.Type != proto.CodeAbort || string(m.URI) != proto.URIAuthenticationDenied {
			t.Fatalf("HELLO a second after the lockout, the wall clock an hour on: %v %s, want ABORT %s", m.Type, m.URI, proto.URIAuthenticationDenied)
		}
	})
	t.Run("back", func(t *testing.T) {
		t.Parallel()
		e, clk := lockedOut(t, -time.Hour)
		clk.adv.Add(int64(DefaultAuthLockout + time.Second))
		if m := hello(e); m.Type != proto.CodeChallenge {
			t.Fatalf("HELLO after the lockout, the wall clock an hour back: %v %s, want CHALLENGE", m.Type, m.URI)
		}
	})
}
