package loop

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// waitProbe calls Check until every known loop answered its probe (the
// probe then posts the next one) or the deadline passes.
func waitProbe(t *testing.T, p *LivenessProbe) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := p.Check(); err != nil {
			t.Fatalf("healthy engine: %v", err)
		}
		answered := true
		for _, lp := range p.loops {
			answered = answered && lp.answered.Load() == lp.sent
		}
		if answered && len(p.loops) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the loops never answered a probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A loop wedged in a task stops answering probes, and the probe says
// which; once it runs again the probe is content. The ticker, on its own
// goroutine, keeps the clock going throughout. (Real time: the stall time
// is 1 s.)
func TestLivenessProbeWedgedLoop(t *testing.T) {
	s := startServer(t, func(o *Options, rc *route.Config) { rc.Shards = 2 })
	// A session makes its loop known to the engine (loopOf).
	s.dial("rs", proto.MsgPack)

	p := s.e.NewLivenessProbe(time.Second)
	for i := 0; i < 3; i++ {
		waitProbe(t, p)
	}

	// Wedge every loop that serves a session: a task that blocks.
	release := make(chan struct{})
	var wedged atomic.Int32
	for i := 0; i < s.r.Shards(); i++ {
		s.r.Shard(i).Do(func() { wedged.Add(1); <-release })
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for wedged.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the wedging task never ran")
		}
		time.Sleep(time.Millisecond)
	}
	// The probe posted before the wedge may still be answered; the one
	// after cannot be.
	var err error
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		err = p.Check()
	}
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "event loop") {
		t.Fatalf("wedged loop: %v, want ErrStalled naming the loop", err)
	}
	if strings.Contains(err.Error(), "ticker") {
		t.Fatalf("the ticker runs on its own goroutine and should not stall: %v", err)
	}

	// Released, the loop answers again.
	close(release)
	deadline = time.Now().Add(10 * time.Second)
	for {
		if p.Check() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the released loop never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitProbe(t, p)
}

// A ticker that stops advancing the engine's clock is reported.
func TestLivenessProbeTickerStalled(t *testing.T) {
	s := startServer(t, nil)
	p := s.e.NewLivenessProbe(time.Second)
	base := time.Now()
	p.now = func() time.Time { return base }
	p.lastClock = -1 // the next Check sees the clock move
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	// Freeze what the probe sees of the clock by pinning lastClock to the
	// current value and checking before the ticker moves it (100 ms).
	p.lastClock = s.e.clock.Load()
	p.now = func() time.Time { return base.Add(2 * time.Second) }
	err := p.Check()
	if s.e.clock.Load() != p.lastClock {
		t.Skip("the ticker ticked during the check; nothing to conclude")
	}
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "ticker") {
		t.Fatalf("frozen clock: %v, want ErrStalled naming the ticker", err)
	}
}
