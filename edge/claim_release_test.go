package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestCleanShutdownReleasesClaims: a node that shuts down cleanly gives
// back the claims of its single registrations before it leaves, so that
// another node registers the procedure at once, even one that has not
// seen it leave (its goodbye is lost here, and the peer timeout long):
// without that, the other node took the claim over only once it took
// the node for dead, after PeerTimeout, and the store kept the claims of
// a node that was gone.
func TestCleanShutdownReleasesClaims(t *testing.T) {
	t.Parallel()
	const peerTimeout = 30 * time.Second
	nodes := clusterWith(t, func(o *Options) { o.PeerTimeout = peerTimeout }, "a", "b", "c")
	waitClaims(t, 20*time.Second, nodes...)
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	// Single registrations whose releases, when the node's sessions
	// close, wait in the claim worker's queue behind a slow store (here a
	// stalled worker, as behind a store a WAN away: each release is a
	// round trip to its leader) when the node shuts down. They were
	// dropped with the queue.
	const n = 50
	uri := func(i int) string { return fmt.Sprintf("com.exclusive.p%d", i) }
	sa := a.dial(a.rs(), proto.JSON)
	for i := range n {
		if _, err := sa.Register(ctx, uri(i), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	sb := b.dial(b.ws(), proto.JSON)
	if _, err := sb.Register(ctx, uri(0), h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("b registered the single procedure a holds: %v", err)
	}
	// a's goodbye is lost: b goes on taking a for alive.
	dropBye := func(ob *outBatch) {
		kept := ob.items[:0]
		for _, it := range ob.items {
			if it.subj != subjBye {
				kept = append(kept, it)
			}
		}
		clear(ob.items[len(kept):])
		ob.items = kept
	}
	a.n.testHookSend.Store(&dropBye)
	gate := make(chan struct{})
	stall := func() { <-gate }
	a.n.claims.testHookNext.Store(&stall)
	go func() {
		// The store answers again once the node is shutting down.
		for !a.n.claims.isClosed() {
			time.Sleep(5 * time.Millisecond)
		}
		close(gate)
	}()
	start := time.Now()
	a.stop()
	t.Logf("a stopped in %v", time.Since(start))
	if got := b.n.Peers(); len(got) != 2 {
		t.Fatalf("b does not take a for alive any more (peers %v): the test cannot tell", got)
	}
	// The claims are out of the store. (A read may fail for a moment,
	// while the store elects a new leader in a's place.)
	left := 0
	for i := range n {
		var err error
		eventually(t, 10*time.Second, func() error {
			gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err = b.n.claims.kv.Get(gctx, claimKey("realm1", proto.MatchExact, uri(i)))
			if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			return err
		})
		if err == nil {
			left++
		}
	}
	if left > 0 {
		t.Errorf("%d of %d claims of a node that shut down cleanly are still in the store", left, n)
	}
	// b registers the procedures at once, well within its peer timeout
	// (10 s allowed for a loaded machine; the peer timeout is 30 s).
	for _, i := range []int{0, n / 2, n - 1} {
		var err error
		for {
			_, err = sb.Register(ctx, uri(i), h, nil)
			if err == nil || time.Since(start) > 10*time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("b registering %s %v after a began to stop: %v", uri(i), time.Since(start), err)
		}
	}
	t.Logf("b registered %v after a began to stop", time.Since(start))
}

// A release the claim store does not take (it cannot be reached: here an
// edge node's uplink is cut) is given back again once the store answers.
// It was dropped: the store kept the edge node's claim of a registration
// gone since, and once the edge node was seen alive again, every REGISTER
// of the procedure anywhere was refused (procedure_already_exists) until
// the edge node left.
func TestClaimReleaseRetried(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdge(t)
	waitClaims(t, 20*time.Second, hub, edge)
	ctx := ctxT(t, 90*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	const uri = "com.exclusive.edge"
	se := edge.dial(edge.ws(), proto.JSON)
	reg, err := se.Register(ctx, uri, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := hub.dial(hub.ws(), proto.JSON)
	if _, err := sh.Register(ctx, uri, h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the hub registered the single procedure the edge node holds: %v", err)
	}

	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(edge.n.Peers()) != 0 {
			return errors.New("the edge node still sees the hub")
		}
		return nil
	})
	// Unregistered with the store out of reach: the release fails.
	if err := se.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	px.restore()
	waitMesh(t, hub, edge)
	// The edge node is alive and holds no registration of uri: the hub
	// registers it once the release is given back (reconcile, every 2 s).
	eventually(t, 20*time.Second, func() error {
		_, err := sh.Register(ctx, uri, h, nil)
		return err
	})
}
