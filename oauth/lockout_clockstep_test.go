package oauth

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The OAuth2 limiter's windows and lockouts follow the monotonic clock, as
// the WAMP login limiter's do (route, 6c33699): a step of the system clock
// (NTP's first sync on a board without a real-time clock, date -s) neither
// lifts a lockout nor holds it for the step's length. Before, the limiter
// was given Server.now, the wall clock: stepped forward an hour, an
// address locked out after BlockAfter wrong passwords had its next guess
// checked a second later (and BlockAfter more at each step); stepped back
// an hour, it was still refused 429 after the lockout had run out.
func TestOAuthLockoutIgnoresWallClockSteps(t *testing.T) {
	t0 := time.Now()
	if s := wallStepped(t0, time.Hour); s.Sub(t0) != 0 || s.Round(0).Sub(t0.Round(0)) != time.Hour {
		t.Skip("time.Time is laid out otherwise: wallStepped cannot model a stepped clock")
	}
	const lockout = 5 * time.Minute
	guess := func(e *testEnv) int {
		st, _ := e.token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess"}}, "backend", backendSec)
		return st
	}
	lockedOut := func(t *testing.T) (*testEnv, *stepClock) {
		clk := &stepClock{base: time.Now()}
		e := startEnv(t, func(o *Options) {
			o.now = clk.now
			o.Store = newMemStore(clk.now)
			o.AuthLimits = AuthLimits{DelayAfter: 100, BlockAfter: 4, Window: time.Minute, Lockout: lockout}
		})
		for i := range 4 {
			if st := guess(e); st == http.StatusTooManyRequests || st == http.StatusOK {
				t.Fatalf("guess %d: %d, want a refusal of the password", i, st)
			}
		}
		if st := guess(e); st != http.StatusTooManyRequests {
			t.Fatalf("guess after 4 failures: %d, want 429", st)
		}
		return e, clk
	}

	t.Run("forward", func(t *testing.T) {
		e, clk := lockedOut(t)
		clk.step.Store(int64(time.Hour))
		clk.adv.Add(int64(time.Second))
		if st := guess(e); st != http.StatusTooManyRequests {
			t.Fatalf("a guess a second after the lockout, the wall clock an hour on: %d, want 429", st)
		}
	})
	t.Run("back", func(t *testing.T) {
		e, clk := lockedOut(t)
		clk.step.Store(-int64(time.Hour))
		clk.adv.Add(int64(lockout + 2*time.Minute))
		if st := guess(e); st == http.StatusTooManyRequests {
			t.Fatalf("a guess after the lockout ran out, the wall clock an hour back: 429, want it checked")
		}
	})
}
