package oauth

import (
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// stepClock is a fake clock of time.Now's kind: a monotonic reading,
// which adv moves with the wall clock, and a wall clock that step moves
// alone, as a step of the system clock does.
type stepClock struct {
	base      time.Time // a time.Now reading (monotonic)
	adv, step atomic.Int64
}

func (c *stepClock) now() time.Time {
	return wallStepped(c.base.Add(time.Duration(c.adv.Load())), time.Duration(c.step.Load()))
}

// The login limiter's windows and lockouts follow the monotonic clock: a
// step of the system clock (NTP's first sync on a board without a
// real-time clock, date -s, a VM resumed) forward neither lifts a lockout
// nor forgets the failures in the window, and a step back does not hold a
// lockout for the step's length. Before, the limiter read now's UnixNano:
// stepped forward an hour, a locked-out address was checked again at once
// (a guesser got BlockAfter more tries at each step); stepped back an
// hour, a client with a fixed secret stayed refused for that hour plus
// the lockout.
func TestLoginLockoutIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	lockedOut := func(t *testing.T, step time.Duration) (*testEnv, *stepClock) {
		clk := &stepClock{base: time.Now()}
		e := startEnv(t, func(o *Options) {
			o.now = clk.now
			o.Store = newMemStore(clk.now)
			o.AuthLimits = AuthLimits{DelayAfter: 100, BlockAfter: 3, Lockout: time.Minute}
		})
		for range 3 {
			st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
			wantOAuthError(t, st, body, 401, "invalid_client")
		}
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", backendSec)
		wantOAuthError(t, st, body, http.StatusTooManyRequests, "invalid_client")
		clk.step.Store(int64(step))
		return e, clk
	}

	t.Run("forward", func(t *testing.T) {
		e, clk := lockedOut(t, time.Hour)
		clk.adv.Add(int64(time.Second))
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
		if st != http.StatusTooManyRequests {
			t.Fatalf("a guess a second into a 1 min lockout, the wall clock an hour on: %d %v, want 429 (refused unchecked)", st, body)
		}
	})
	t.Run("back", func(t *testing.T) {
		e, clk := lockedOut(t, -time.Hour)
		clk.adv.Add(int64(time.Minute + time.Second))
		// Checked again (401), not refused unchecked (429). (The right
		// secret would get 503: the signing key, active from its
		// writer's clock less MaxClockSkew, is not active yet an hour
		// before: a date, as the tokens' are.)
		st, body := e.token(url.Values{"grant_type": {"client_credentials"}}, "backend", "guess")
		if st != http.StatusUnauthorized {
			t.Fatalf("a guess after a 1 min lockout, the wall clock an hour back: %d %v, want 401 (checked)", st, body)
		}
	})
}

// A device's polls are timed by the monotonic clock: stepped back an
// hour between two polls at the interval, the second looked an hour
// early by the wall clock and got slow_down, and so did every poll for
// the hour (the interval growing by 5 s at each, the device noticing the
// user's approval later and later).
func TestDevicePollIgnoresWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	clk := &stepClock{base: time.Now()}
	e := startEnv(t, func(o *Options) { o.now = clk.now; o.Store = newMemStore(clk.now) })
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	interval := time.Duration(da["interval"].(float64)) * time.Second
	for i := range 3 {
		if _, body := e.devicePoll(dc); body["error"] != "authorization_pending" {
			t.Fatalf("poll %d at the interval (%v), the wall clock stepped an hour back before it: %v, want authorization_pending", i+1, interval, body)
		}
		clk.step.Store(int64(-time.Hour))
		clk.adv.Add(int64(interval))
	}
}
