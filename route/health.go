package route

import (
	"errors"
	"fmt"
	"time"
)

// Liveness of the timer goroutine. Call timeouts, HELLO and GOODBYE
// deadlines and authentication delays all hang on the router's one timer
// goroutine (timerLoop): if it stopped, calls would wait forever. It
// proves it is alive by advancing timerBeat on each iteration; a probe
// wakes it up (it may otherwise sleep for up to a minute) and checks that
// the beat moved.

// ErrTimersStalled is wrapped by TimerProbe.Check when the timer goroutine
// has stopped making progress.
var ErrTimersStalled = errors.New("route: timer goroutine stalled")

// TimerProbe checks that the router's timer goroutine makes progress.
// Create it with Router.NewTimerProbe and call Check periodically from one
// goroutine (it is not safe for concurrent use with itself).
type TimerProbe struct {
	r      *Router
	stall  time.Duration
	now    func() time.Time
	seen   uint64    // timerBeat at the last Check that saw it move
	pokeAt time.Time // when that Check woke the goroutine
}

// NewTimerProbe returns a probe that reports the timer goroutine stalled
// once it has not iterated for stall after being woken. Call Check at an
// interval well below stall.
func (r *Router) NewTimerProbe(stall time.Duration) *TimerProbe {
	p := &TimerProbe{r: r, stall: stall, now: time.Now}
	p.seen = r.timerBeat.Load()
	p.pokeAt = p.now()
	r.wakeTimers()
	return p
}

// Check returns nil when the timer goroutine iterated since the last
// Check (or the last wake-up is younger than the stall time), and an error
// wrapping ErrTimersStalled otherwise. Each Check that finds it alive
// wakes it again, so that the next Check sees a fresh beat. It never
// blocks and does not allocate when all is well.
func (p *TimerProbe) Check() error {
	now := p.now()
	if b := p.r.timerBeat.Load(); b != p.seen {
		p.seen, p.pokeAt = b, now
		p.r.wakeTimers()
		return nil
	}
	if d := now.Sub(p.pokeAt); d > p.stall {
		return fmt.Errorf("%w: no iteration for %v after a wake-up", ErrTimersStalled, d.Round(time.Millisecond))
	}
	return nil
}
