package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// The winner of a single-registration conflict, whose claim is
// provisional (registered while its uplink was cut, never written),
// unregisters while the loser's handover is queued on the loser's
// worker (decided on a directory that still showed the winner). The
// winner's release reads the store (the loser's value: nothing to give),
// then the handover writes the winner's life: the store holds a claim of
// a live node with no registration behind it.
func TestClaimHandOverAfterWinnerUnregistered(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
	}
	leafAddr := edgetest.FreeAddr(t)
	px := newProxy(t, leafAddr)
	hub := startNode(t, "hub", func(o *Options) { fast(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge := startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 90*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 0 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	edgeCallee := edge.dial(edge.rs(), proto.JSON)
	edgeReg, err := edgeCallee.Register(ctx, "com.race", h, nil) // provisional
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	hubReg, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "com.race", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	settled := hub.n.claims.checksSettled.Load()
	px.restore()
	waitMesh(t, hub, edge)
	eventually(t, 10*time.Second, func() error {
		if hub.n.claims.checksSettled.Load() == settled || hub.n.claims.recheck.Load() {
			return fmt.Errorf("the hub's check after the join has not settled")
		}
		return nil
	})
	// The hub's worker is behind (a queue of claims, a slow store).
	gate := make(chan struct{})
	hook := func() { <-gate }
	hub.n.claims.testHookNext.Store(&hook)
	eventually(t, 10*time.Second, func() error {
		hub.n.claims.qmu.Lock()
		defer hub.n.claims.qmu.Unlock()
		if len(hub.n.claims.q) > 0 {
			return nil
		}
		return fmt.Errorf("no handover (or release) queued on the hub (hub's registration active %v)", hubReg.Active())
	})
	// The winner unregisters; its release is given to the store.
	if err := edgeCallee.Unregister(ctx, edgeReg); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	edge.n.Released(func() { close(done) })
	<-done
	hub.n.claims.testHookNext.Store(nil)
	close(gate)
	// Nobody registers com.race now: a REGISTER on the hub is granted
	// within a few reconciles.
	s := hub.dial(hub.ws(), proto.JSON)
	eventually(t, 8*time.Second, func() error {
		reg, err := s.Register(ctx, "com.race", h, nil)
		if err != nil {
			key := claimKey("realm1", proto.MatchExact, "com.race")
			gctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			e, gerr := hub.n.claims.kv.Get(gctx, key)
			v := ""
			if gerr == nil {
				v = string(e.Value())
			}
			return fmt.Errorf("REGISTER on the hub with no registration standing: %v (the store holds %q, %v)", err, v, gerr)
		}
		_ = s.Unregister(ctx, reg)
		return nil
	})
}

// As above, the winner's claim written before the cut and taken over by
// the hub (contested): its release is read again at its next reconcile,
// once; a handover landing after that read stays.
func TestClaimHandOverAfterContestedReread(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
	}
	leafAddr := edgetest.FreeAddr(t)
	px := newProxy(t, leafAddr)
	hub := startNode(t, "hub", func(o *Options) { fast(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge := startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 90*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	edgeCallee := edge.dial(edge.rs(), proto.JSON)
	edgeReg, err := edgeCallee.Register(ctx, "com.race2", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 0 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	hubCallee := hub.dial(hub.ws(), proto.JSON)
	eventually(t, 15*time.Second, func() error {
		before := hub.n.Stats().ClaimsProvisional.Load()
		reg, err := hubCallee.Register(ctx, "com.race2", h, nil)
		if err != nil {
			t.Fatalf("the hub could not take over: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			_ = hubCallee.Unregister(ctx, reg)
			return fmt.Errorf("the hub's claim was provisional")
		}
		return nil
	})
	settled := hub.n.claims.checksSettled.Load()
	px.restore()
	waitMesh(t, hub, edge)
	eventually(t, 10*time.Second, func() error {
		if hub.n.claims.checksSettled.Load() == settled || hub.n.claims.recheck.Load() {
			return fmt.Errorf("the hub's check after the join has not settled")
		}
		return nil
	})
	gate := make(chan struct{})
	hook := func() { <-gate }
	hub.n.claims.testHookNext.Store(&hook)
	eventually(t, 10*time.Second, func() error {
		hub.n.claims.qmu.Lock()
		defer hub.n.claims.qmu.Unlock()
		if len(hub.n.claims.q) > 0 {
			return nil
		}
		return fmt.Errorf("no handover queued on the hub")
	})
	if err := edgeCallee.Unregister(ctx, edgeReg); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	edge.n.Released(func() { close(done) })
	<-done
	time.Sleep(2*reconcileEvery + 500*time.Millisecond) // the edge's reread at its next reconcile
	hub.n.claims.testHookNext.Store(nil)
	close(gate)
	s := hub.dial(hub.ws(), proto.JSON)
	eventually(t, 8*time.Second, func() error {
		reg, err := s.Register(ctx, "com.race2", h, nil)
		if err != nil {
			key := claimKey("realm1", proto.MatchExact, "com.race2")
			gctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			e, gerr := hub.n.claims.kv.Get(gctx, key)
			v := ""
			if gerr == nil {
				v = string(e.Value())
			}
			return fmt.Errorf("REGISTER on the hub with no registration standing: %v (the store holds %q, %v)", err, v, gerr)
		}
		_ = s.Unregister(ctx, reg)
		return nil
	})
}
