package edge

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A REGISTER on a of the single procedure of c, killed (its route
// closed), waits for c to be taken for dead (the claim store's wait of
// 2 x peer_timeout for a lost route: claims.go cutOff); a's process
// stops within that wait and runs again past its end, before a has
// taken c for dead (its peers' silence during the stall is credited:
// runControl). The REGISTER must still be granted once c is taken for
// dead: the claim store's wait is credited the stall too.
func stallChildClaimWait(t *testing.T) {
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = stallHeartbeat
		o.PeerTimeout = stallPeerTimeout
	}, "a", "b", "c")
	a, c := nodes[0], nodes[2]
	waitClaims(t, 15*time.Second, nodes...)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, c)
	s := a.dial(a.ws(), proto.JSON)
	claimsLeaderNot(t, a, "c")
	storeAnswers(t, ctx, a, s)
	killHard(c)
	routeGone(t, a, "c")
	start := time.Now()
	done := registerOnly(ctx, s)
	time.Sleep(300 * time.Millisecond)
	woke := stallNow(t)
	t.Logf("woke %v after the REGISTER; a's peers lost: %d", woke.Sub(start).Round(time.Millisecond), a.n.Stats().PeersLost.Load())
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("REGISTER on a of killed c's single procedure, a's process stopped during the claim's wait: %v (%v after waking, a's peers lost %d), want it granted once c is taken for dead", err, time.Since(woke).Round(time.Millisecond), a.n.Stats().PeersLost.Load())
		}
		t.Logf("granted %v after waking", time.Since(woke).Round(time.Millisecond))
	case <-time.After(stallPeerTimeout + 2*time.Second):
		t.Fatal("the REGISTER did not end")
	}
}

// TestStalledNodeClaimWaitsForKilledPeer: see stallChildClaimWait.
func TestStalledNodeClaimWaitsForKilledPeer(t *testing.T) {
	stallChild(t, "claimwait", 2*stallPeerTimeout)
}

// TestStalledNodeClaimWaitsForKilledPeerLongStall: as
// TestStalledNodeClaimWaitsForKilledPeer, the stall past the parked
// claim's bound (3 x peer_timeout).
func TestStalledNodeClaimWaitsForKilledPeerLongStall(t *testing.T) {
	stallChild(t, "claimwait", 4*stallPeerTimeout)
}
