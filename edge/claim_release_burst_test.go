package edge

import (
	"context"
	"fmt"
	"sync"
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
// devices that reconnect to another node. Here the queue's bound is 4
// and 12 releases come at once, while the worker is stalled.
//
// Conditions, not wall-clock: the worker is known stalled before the
// session leaves, every release is known queued (or dropped) before it
// goes on, and the store itself is read until it holds none of the
// claims (one release is a store round trip: seconds for all of them on
// a loaded machine under -race).
func TestReleaseBurstNotDropped(t *testing.T) {
	t.Parallel()
	const bound, k = 4, 12
	hub, edge, _ := hubAndEdgeWith(t, func(o *Options) { o.testClaimQueue = bound })
	waitClaims(t, 20*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	uri := func(i int) string { return fmt.Sprintf("com.device.d%d.reboot", i) }
	keys := make([]string, k)
	for i := range k {
		keys[i] = claimKey("realm1", proto.MatchExact, uri(i))
	}
	se := edge.dial(edge.rs(), proto.JSON)
	for i := range k {
		if _, err := se.Register(ctx, uri(i), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	// In the store (a claim a loaded machine's store answered too late
	// for is held provisionally, and written by reconcile).
	eventually(t, 30*time.Second, func() error {
		mine, _, err := claimsHeldBy(ctx, hub, edge, keys)
		if err == nil && mine != k {
			err = fmt.Errorf("the store holds %d of the edge node's %d claims", mine, k)
		}
		return err
	})

	// The worker stalled (a slow store) before the session leaves.
	gate, stalled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stall := func() {
		once.Do(func() { close(stalled) })
		<-gate
	}
	edge.n.claims.testHookNext.Store(&stall)
	edge.n.claims.wake()
	select {
	case <-stalled:
	case <-ctx.Done():
		t.Fatal("the claim worker did not run its next job")
	}
	se.Close()
	// Every release of the leave queued, or dropped.
	queued := func() int {
		edge.n.claims.qmu.Lock()
		defer edge.n.claims.qmu.Unlock()
		n := 0
		for _, j := range edge.n.claims.q {
			if j.done == nil && j.barrier == nil {
				n++
			}
		}
		return n
	}
	eventually(t, 20*time.Second, func() error {
		q, dropped := queued(), int(edge.n.stats.ReleasesDropped.Load())
		if q+dropped < k {
			return fmt.Errorf("%d of %d releases queued, %d dropped", q, k, dropped)
		}
		return nil
	})
	edge.n.claims.testHookNext.Store(nil)
	close(gate)
	if got := edge.n.stats.ReleasesDropped.Load(); got != 0 {
		t.Fatalf("%d of %d releases dropped: the store keeps their claims", got, k)
	}

	// The store gives every claim back (a release it did not take at once
	// is kept, and given back by reconcile).
	var mine int
	if !within(30*time.Second, func() error {
		var err error
		if mine, _, err = claimsHeldBy(ctx, hub, edge, keys); err != nil {
			return err
		}
		if mine > 0 {
			return fmt.Errorf("%d held", mine)
		}
		return nil
	}) {
		t.Fatalf("%d of %d single procedures a session that left had registered on a live node are still claimed in the store", mine, k)
	}
	// So every procedure is free for the hub's sessions.
	sh := hub.dial(hub.rs(), proto.JSON)
	left := map[int]error{}
	for i := range k {
		left[i] = nil
	}
	within(20*time.Second, func() error {
		for i := range left {
			if _, err := sh.Register(ctx, uri(i), h, nil); err == nil {
				delete(left, i)
			} else {
				left[i] = err
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%d refused", len(left))
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("%d of %d single procedures a session that left had registered on a live node are still refused elsewhere: %v", len(left), k, left)
	}
}
