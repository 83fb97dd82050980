package edge

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A stall of this node's process followed by a second one before any
// heartbeat of its peers was read (a paused VM paused again, swap
// storms): a peer is credited one stall a silence (creditStall), so on
// the second waking a live peer's silence is this node's second stall.
// It must not be taken for dead before this node has run long enough to
// read what the peer sent meanwhile. Simulated in process: a's control
// dispatcher sleeps at two ticks in a row (testHookTick) while its
// control queue's pump delivers nothing (testHookControlPump), as when
// the whole process stops; the pump goes on just after the second
// waking's tick.
func TestStalledTwiceKeepsLivePeer(t *testing.T) {
	const (
		hb    = 100 * time.Millisecond
		pt    = time.Second
		stall = 1500 * time.Millisecond
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
		if o.Name == "b" {
			o.PeerTimeout = 30 * time.Second // b is not stalled: it keeps a
		}
	}, "a", "b")
	a := nodes[0]
	time.Sleep(3 * hb)
	var held sync.RWMutex
	// The pump waits while held is locked: an empty critical section on
	// purpose.
	pump := func() {
		held.RLock()
		//lint:ignore SA2001 a gate, not a guard of data
		held.RUnlock()
	}
	a.n.testHookControlPump.Store(&pump)
	t.Cleanup(func() { a.n.testHookControlPump.Store(nil) })
	var ticks atomic.Int32
	done := make(chan struct{})
	tick := func() {
		switch ticks.Add(1) {
		case 1:
			// Nothing is delivered from here on (the pump, waiting for
			// a batch, passes one more, read before the stalls).
			held.Lock()
		case 4: // the first stall
			time.Sleep(stall)
		case 5: // the second, a tick after the first waking
			time.Sleep(stall)
			// Delivery goes on just after this tick's judgement.
			time.AfterFunc(20*time.Millisecond, func() { held.Unlock(); close(done) })
		}
	}
	a.n.testHookTick.Store(&tick)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a's dispatcher never stalled twice")
	}
	time.Sleep(pt / 2)
	lost := a.n.Stats().PeersLost.Load()
	t.Logf("a, stalled twice (%v each) before reading b's heartbeats: peers lost %d, sees %v, credited %v", stall, lost, a.n.Peers(), time.Duration(a.n.stallCredit.Load()).Round(time.Millisecond))
	if lost != 0 || !slices.Contains(a.n.Peers(), "b") {
		t.Errorf("a, its process stalled twice in a row (%v each) with live b's heartbeats not read between, took b for dead on waking (peers lost %d)", stall, lost)
	}
}
