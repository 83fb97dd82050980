package client

import (
	"testing"
	"time"
)

// The jitter of a wait next to MinBackoff or MaxBackoff is drawn within
// the bounds, not drawn and then clamped to them: clamped, every draw
// past a bound was that bound exactly, half of them, so that half the
// clients whose attempts failed together (a fleet moved to a node that
// refused it) came back in the same instant at MinBackoff, and half of
// those at the cap at MaxBackoff, where the jitter was to spread them.
func TestBackoffJitterNotPiledOnBounds(t *testing.T) {
	c := &Client{rc: ReconnectConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}
	const draws = 1000
	for _, b := range []time.Duration{c.rc.MinBackoff, c.rc.MaxBackoff} {
		at := 0
		for range draws {
			w := c.jittered(b)
			if w < c.rc.MinBackoff || w > c.rc.MaxBackoff {
				t.Fatalf("jittered(%v) = %v, outside [%v, %v]", b, w, c.rc.MinBackoff, c.rc.MaxBackoff)
			}
			if w == c.rc.MinBackoff || w == c.rc.MaxBackoff {
				at++
			}
		}
		if at > draws/20 {
			t.Errorf("jittered(%v): %d of %d waits exactly at a bound", b, at, draws)
		}
	}
	// MinBackoff = MaxBackoff leaves no room: that wait.
	c.rc.MaxBackoff = c.rc.MinBackoff
	if w := c.jittered(c.rc.MinBackoff); w != c.rc.MinBackoff {
		t.Fatalf("jittered with MinBackoff = MaxBackoff = %v: %v", c.rc.MinBackoff, w)
	}
}
