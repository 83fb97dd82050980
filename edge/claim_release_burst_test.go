package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Sessions that leave at once (a node's clients cut by a network blip, a
// load balancer restarting) queue one release per single registration of
// theirs while the claim worker is behind (each release is a round trip
// to the store). The worker's queue refused jobs past maxReleaseJobs
// (65,536, one session's limits.registrations): the releases past it were
// dropped, and the store kept those claims of a live node for
// registrations gone, so that every other node's REGISTER of them was
// refused (procedure_already_exists) until this node left, for ever for
// devices that reconnect to another node. Here the queue's bound is 20
// and 60 releases come at once.
func TestReleaseBurstNotDropped(t *testing.T) {
	t.Parallel()
	hub, edge, _ := hubAndEdgeWith(t, func(o *Options) { o.testClaimQueue = 20 })
	waitClaims(t, 20*time.Second, hub, edge)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	const k = 60
	uri := func(i int) string { return fmt.Sprintf("com.device.d%d.reboot", i) }
	se := edge.dial(edge.rs(), proto.JSON)
	for i := range k {
		if _, err := se.Register(ctx, uri(i), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The worker behind (stalled) while the session leaves.
	gate := make(chan struct{})
	stall := func() { <-gate }
	edge.n.claims.testHookNext.Store(&stall)
	edge.n.claims.wake()
	se.Close()
	eventually(t, 10*time.Second, func() error {
		edge.n.claims.qmu.Lock()
		q := len(edge.n.claims.q)
		edge.n.claims.qmu.Unlock()
		if q < 20 {
			return fmt.Errorf("%d releases queued", q)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the rest of the leave's releases
	edge.n.claims.testHookNext.Store(nil)
	close(gate)
	if got := edge.n.stats.ReleasesDropped.Load(); got != 0 {
		t.Errorf("%d of %d releases dropped", got, k)
	}
	// Every procedure is free for the hub's sessions once the releases are
	// given back.
	sh := hub.dial(hub.rs(), proto.JSON)
	left := map[int]bool{}
	for i := range k {
		left[i] = true
	}
	within(8*time.Second, func() error {
		for i := range left {
			if _, err := sh.Register(ctx, uri(i), h, nil); err == nil {
				delete(left, i)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d refused", len(left))
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("%d of %d single procedures a session that left had registered on a live node are still refused elsewhere", len(left), k)
	}
}
