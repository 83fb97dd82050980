package edge

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// A control dispatcher chronically scheduled late (a busy or starved
// host: each tick taken over two heartbeats late, the node running
// meanwhile) is credited a stall (runControl) at its ticks. A peer killed
// meanwhile (no goodbye) must still be taken for dead within a bounded
// time: peer_timeout and a stall or two, not peer_timeout times the
// lateness over a heartbeat.
func TestLateDispatcherStillFindsDeadPeer(t *testing.T) {
	const (
		hb   = 100 * time.Millisecond
		pt   = time.Second
		late = 500 * time.Millisecond
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	hook := func() { time.Sleep(late) }
	a.n.testHookTick.Store(&hook)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	time.Sleep(2 * pt)
	if lost := a.n.Stats().PeersLost.Load() + b.n.Stats().PeersLost.Load(); lost != 0 {
		t.Fatalf("a's dispatcher %v late: peers lost %d before any was killed (a sees %v, b sees %v)", late, lost, a.n.Peers(), b.n.Peers())
	}
	killHard(c)
	start := time.Now()
	bound := pt + 4*(late+hb)
	var lostAt time.Duration
	if !within(4*bound, func() error {
		if slices.Contains(a.n.Peers(), "c") {
			return fmt.Errorf("a still holds c")
		}
		lostAt = time.Since(start)
		return nil
	}) {
		t.Fatalf("a, its dispatcher %v late at each tick, still held killed c %v after its kill", late, 4*bound)
	}
	t.Logf("a (its dispatcher %v late at each tick) took killed c for dead %v after its kill (peer_timeout %v); b did %v", late, lostAt.Round(time.Millisecond), pt, !slices.Contains(b.n.Peers(), "c"))
	if lostAt > bound {
		t.Errorf("a, its dispatcher %v late at each tick, took killed c for dead %v after its kill: over %v (peer_timeout %v and four late ticks)", late, lostAt.Round(time.Millisecond), bound, pt)
	}
	if !slices.Contains(b.n.Peers(), "a") || !slices.Contains(a.n.Peers(), "b") {
		t.Errorf("a and b lost each other: a sees %v, b sees %v", a.n.Peers(), b.n.Peers())
	}
}
