package edge

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Within the mesh's hold after a conflict on heal (the hub's
// registration, made while it took edge1 for dead, lost to edge1's), the
// winner's callee unregisters and a standby on edge2, which saw the
// conflict, registers on its UNREGISTERED; edge2's control dispatcher is
// stalled, so that its directory still shows the winner's callee. Before,
// the hold refused it at once (procedure_already_exists: "already
// registered") though nobody held the procedure; now it waits for the
// winner's change, then asks the store.
func TestClaimStandbyWithinHoldAnsweredOnceWinnerLeaves(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
	}
	leafAddr := edgetest.FreeAddr(t)
	px := newProxy(t, leafAddr)
	hub := startNode(t, "hub", func(o *Options) { fast(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge := startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	other := startNode(t, "edge2", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge, other)
	waitClaims(t, 15*time.Second, hub, edge, other)
	ctx := ctxT(t, 90*time.Second)
	const uri = "com.holdstandby"
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	edgeCallee := edge.dial(edge.rs(), proto.JSON)
	edgeReg, err := edgeCallee.Register(ctx, uri, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 1 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	hubCallee := hub.dial(hub.ws(), proto.JSON)
	var hubReg *client.Registration
	eventually(t, 15*time.Second, func() error {
		before := hub.n.Stats().ClaimsProvisional.Load()
		reg, err := hubCallee.Register(ctx, uri, h, nil)
		if err != nil {
			t.Fatalf("hub: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			_ = hubCallee.Unregister(ctx, reg)
			return fmt.Errorf("provisional")
		}
		hubReg = reg
		return nil
	})
	var hubNode []route.MeshNode
	eventually(t, 10*time.Second, func() error {
		hubNode = other.r.MeshCallees("realm1", uri)
		if len(hubNode) != 1 {
			return fmt.Errorf("edge2 sees %v", hubNode)
		}
		return nil
	})
	px.restore()
	waitMesh(t, hub, edge, other)
	eventually(t, 15*time.Second, func() error {
		if got := other.r.MeshCallees("realm1", uri); hubReg.Active() || !edgeReg.Active() || len(got) != 1 || slices.Equal(got, hubNode) {
			return fmt.Errorf("hub active %v, edge active %v, edge2 sees %v", hubReg.Active(), edgeReg.Active(), got)
		}
		return nil
	})
	settled := time.Now()
	// Within the hold: the winner hands over to a standby on edge2,
	// whose directory reads the winner's change late.
	release := stallControl(t, other, nil)
	if err := edgeCallee.Unregister(ctx, edgeReg); err != nil {
		t.Fatal(err)
	}
	standby := other.dial(other.ws(), proto.JSON)
	done := make(chan error, 1)
	go func() {
		_, err := standby.Register(ctx, uri, h, nil)
		done <- err
	}()
	select {
	case err := <-done:
		release()
		t.Fatalf("a standby on edge2 registering after the winner's UNREGISTERED, %v after the conflict settled, was answered while edge2's directory still shows the winner: %v", time.Since(settled).Round(time.Millisecond), err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("a standby on edge2 registering after the winner's UNREGISTERED, %v after the conflict settled: %v", time.Since(settled).Round(time.Millisecond), err)
	}
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if e, err := hub.n.claims.kv.Get(gctx, claimKey("realm1", proto.MatchExact, uri)); err != nil || string(e.Value()) != string(other.n.claims.value()) {
		t.Fatalf("the store does not hold edge2's claim: %v", err)
	}
}
