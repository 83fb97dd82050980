package edge

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A REGISTER on a of the single procedure of killed c waits for c to be
// taken for dead (claims.go, cutOff); a's process stalls twice in a row
// meanwhile, before reading anything between (TestStalledTwiceKeepsLivePeer).
// The claim's wait is credited the first stall only, as c is: the
// REGISTER must be granted once c is taken for dead, not refused while
// a still holds c for the heartbeats after the second waking.
func TestStalledTwiceClaimWaitsForKilledPeer(t *testing.T) {
	const (
		hb = 100 * time.Millisecond
		pt = time.Second
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
		if o.Name == "b" {
			o.PeerTimeout = 30 * time.Second // b is not stalled: it keeps a
		}
	}, "a", "b", "c")
	a, c := nodes[0], nodes[2]
	waitClaims(t, 15*time.Second, nodes...)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, c)
	s := a.dial(a.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
	storeAnswers(t, ctx, a, s)
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
	var woke atomic.Int64
	tick := func() {
		switch ticks.Add(1) {
		case 1:
			held.Lock()
		case 4:
			time.Sleep(1500 * time.Millisecond)
		case 5:
			time.Sleep(2 * time.Second)
			woke.Store(time.Now().UnixNano())
			time.AfterFunc(20*time.Millisecond, held.Unlock)
		}
	}
	killHard(c)
	routeGone(t, a, "c")
	done := registerOnly(ctx, s)
	a.n.testHookTick.Store(&tick)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	select {
	case err := <-done:
		at := time.Duration(time.Now().UnixNano() - woke.Load())
		t.Logf("REGISTER: %v (%v after the second waking; a's ticks %d, peers lost %d)", err, at.Round(time.Millisecond), ticks.Load(), a.n.Stats().PeersLost.Load())
		if err != nil {
			t.Fatalf("REGISTER on a of killed c's single procedure, a's process stalled twice during the claim's wait: %v, want it granted once c is taken for dead", err)
		}
		if ticks.Load() < 5 {
			t.Fatal("granted before a stalled twice")
		}
		// And live b is kept through both stalls: the grant alone does not
		// tell (with the peers' spare undone, c and b were both dropped
		// on waking and the REGISTER granted all the same, review13).
		time.Sleep(5 * hb)
		if lost := a.n.Stats().PeersLost.Load(); lost != 1 || !slices.Contains(a.n.Peers(), "b") {
			t.Errorf("a, its process stalled twice in a row, took live b for dead besides killed c: peers lost %d (want 1), sees %v", lost, a.n.Peers())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the REGISTER did not end")
	}
}
