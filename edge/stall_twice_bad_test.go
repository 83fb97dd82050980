package edge

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A node speaking another mesh version (peers.go, bad) is alive for the
// claim store while heard (claims.go, life): a's process stalls twice in
// a row before reading anything between (TestStalledTwiceKeepsLivePeer).
// a must not forget it on the second waking, which it would hear again a
// moment later; while forgotten, a single registration it holds is taken
// for a dead node's.
func TestStalledTwiceKeepsIncompatibleNode(t *testing.T) {
	const (
		hb    = 100 * time.Millisecond
		pt    = time.Second
		stall = 1500 * time.Millisecond
	)
	nodes := clusterNoWait(t, func(o *Options) {
		o.Heartbeat, o.PeerTimeout = hb, pt
		if o.Name == "x" {
			o.PeerTimeout = 30 * time.Second // x is not stalled
			o.testMeshVersion = 99
		}
	}, "a", "x")
	a := nodes[0]
	heard := func() bool {
		for _, p := range a.n.IncompatiblePeers() {
			if p.Name == "x" {
				return true
			}
		}
		return false
	}
	eventually(t, 10*time.Second, func() error {
		if !heard() {
			return fmt.Errorf("a does not hear x as incompatible: %v", a.n.IncompatiblePeers())
		}
		return nil
	})
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
	var kept atomic.Bool
	kept.Store(true)
	done := make(chan struct{})
	tick := func() {
		switch ticks.Add(1) {
		case 1:
			held.Lock()
		case 4:
			time.Sleep(stall)
		case 5:
			time.Sleep(stall)
			time.AfterFunc(20*time.Millisecond, func() { held.Unlock(); close(done) })
		default:
			if !heard() {
				kept.Store(false)
			}
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
	t.Logf("a, stalled twice (%v each) before reading x's heartbeats: x held at each tick after %v, now %v", stall, kept.Load(), heard())
	if !kept.Load() || !heard() {
		t.Errorf("a, its process stalled twice in a row (%v each) with incompatible x's heartbeats not read between, forgot x on waking (held at each tick after: %v)", stall, kept.Load())
	}
}
