package route

import (
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// The probe says the timer goroutine is alive while it runs, and stalled
// once it stops iterating (here: stopped by Close).
func TestTimerProbe(t *testing.T) {
	r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var clock atomic.Int64 // ns since start; the probe's own clock
	base := time.Now()
	p := r.NewTimerProbe(time.Second)
	p.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }
	p.pokeAt = p.now()

	// Alive: every wake-up is answered by an iteration.
	for i := 0; i < 5; i++ {
		deadline := time.Now().Add(10 * time.Second)
		before := p.seen
		for p.seen == before {
			clock.Add(int64(100 * time.Millisecond))
			if err := p.Check(); err != nil {
				t.Fatalf("check %d: %v", i, err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the timer goroutine never answered a wake-up")
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Stopped: the beat stays, and once the stall time has passed since
	// the last wake-up the probe says so.
	r.Close()
	p.Check() // may still see the last iteration
	clock.Add(int64(500 * time.Millisecond))
	if err := p.Check(); err != nil {
		t.Fatalf("within the stall time: %v", err)
	}
	clock.Add(int64(time.Second))
	if err := p.Check(); !errors.Is(err, ErrTimersStalled) {
		t.Fatalf("after the stall time: %v, want ErrTimersStalled", err)
	}
}

// A router whose timers are driven by hand has no goroutine: the probe
// reports it stalled, which is how a wedged goroutine looks.
func TestTimerProbeWithoutGoroutine(t *testing.T) {
	e := newEnv(t, 1, nil)
	p := e.r.NewTimerProbe(time.Second)
	start := time.Now()
	p.now = func() time.Time { return start }
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return start.Add(2 * time.Second) }
	if err := p.Check(); !errors.Is(err, ErrTimersStalled) {
		t.Fatalf("got %v, want ErrTimersStalled", err)
	}
}
