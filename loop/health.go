package loop

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Liveness: a supervisor (systemd's watchdog, through cmd) must learn when
// an event loop is wedged — stuck in a callback, so that it runs neither
// I/O nor tasks — and stop vouching for the process, so that it is
// restarted. A loop proves it is alive by running a probe task: the task
// stores the probe's sequence number, which only the loop's own goroutine
// can do. The engine's ticker (OnTick, which keeps the coarse clock and
// schedules the deadline scans) proves it is alive by advancing the clock.
//
// Only loops that have served a connection are probed: the engine learns
// a loop from its first connection (loopOf), and before that the loop has
// run no edgewamp code that could wedge it.

// ErrStalled is wrapped by LivenessProbe.Check when a loop or the ticker
// stopped making progress.
var ErrStalled = errors.New("loop: stalled")

// LivenessProbe checks that the engine's event loops and its ticker make
// progress. Create it with Engine.NewLivenessProbe and call Check
// periodically from one goroutine (it is not safe for concurrent use with
// itself; the probe tasks it posts run on the loops). It allocates one
// small task per loop per Check.
type LivenessProbe struct {
	e     *Engine
	stall time.Duration
	now   func() time.Time // monotonic readings; injectable for tests

	loops map[*loopState]*loopProbe

	lastClock   int64     // engine clock at the last change seen
	clockSeenAt time.Time // when Check saw lastClock change
}

// loopProbe is the probe state of one loop.
type loopProbe struct {
	answered atomic.Uint64 // written by the loop's probe task
	sent     uint64        // owned by the Check goroutine
	sentAt   time.Time     // owned by the Check goroutine
}

// NewLivenessProbe returns a probe that reports a loop (or the ticker) as
// stalled once it has not made progress for stall. Call Check at an
// interval well below stall (a quarter of it, say): a probe is answered at
// the loop's next iteration, and a healthy loop iterates many times a
// second.
func (e *Engine) NewLivenessProbe(stall time.Duration) *LivenessProbe {
	now := time.Now()
	return &LivenessProbe{e: e, stall: stall, now: time.Now, loops: map[*loopState]*loopProbe{},
		lastClock: e.clock.Load(), clockSeenAt: now}
}

// Check reports whether every known event loop answered its last probe
// within the stall time and the ticker advanced the clock within it, and
// posts the next probe to each loop that answered. It returns nil when
// all is well, an error wrapping ErrStalled naming what is stuck, or an
// error when the event loops have stopped. It never blocks.
func (p *LivenessProbe) Check() error {
	e := p.e
	select {
	case <-e.stopped:
		return fmt.Errorf("loop: event loops stopped: %v", e.stopErr)
	default:
	}
	now := p.now()
	var errs []error
	if c := e.clock.Load(); c != p.lastClock {
		p.lastClock, p.clockSeenAt = c, now
	} else if d := now.Sub(p.clockSeenAt); d > p.stall {
		errs = append(errs, fmt.Errorf("%w: the engine ticker has not ticked for %v", ErrStalled, d.Round(time.Millisecond)))
	}
	for _, ls := range e.allLoops() {
		lp := p.loops[ls]
		if lp == nil {
			lp = &loopProbe{}
			p.loops[ls] = lp
		}
		if lp.answered.Load() != lp.sent {
			if d := now.Sub(lp.sentAt); d > p.stall {
				errs = append(errs, fmt.Errorf("%w: event loop %d has not run a task for %v", ErrStalled, ls.shard.Index(), d.Round(time.Millisecond)))
			}
			continue // one probe outstanding at a time
		}
		lp.sent++
		lp.sentAt = now
		seq := lp.sent
		err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			lp.answered.Store(seq)
			ls.rest() // the probe woke a parked loop: park it again
			return nil
		}))
		if err != nil {
			errs = append(errs, fmt.Errorf("loop: event loop %d refuses tasks: %w", ls.shard.Index(), err))
		}
	}
	return errors.Join(errs...)
}
