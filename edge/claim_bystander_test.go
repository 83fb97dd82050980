package edge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A conflict of single registrations a partition made (edge1's, made
// first, and the hub's, which took edge1's claim over while it took edge1
// for dead) settles against the hub, which revokes its callee and gives
// its claim back; edge1 claims the procedure again at its next reconcile.
// Between the two the store holds no claim for edge1's registration, and
// a third node (edge2, which saw the conflict) asked the store: it was
// granted a REGISTER of the procedure, and two exclusive registrations
// stood until edge2's was revoked a second later. Here edge1's worker is
// held (testHookNext) from before the hub's give-back until edge2's
// REGISTER is answered: its reconcile has not come yet.
func TestClaimBystanderRefusesWhileWinnerClaimsBack(t *testing.T) {
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
	const uri = "com.bystander"
	key := claimKey("realm1", proto.MatchExact, uri)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	edgeReg, err := edge.dial(edge.rs(), proto.JSON).Register(ctx, uri, h, nil)
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
			t.Fatalf("the hub could not take over the claim of the edge it took for dead: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			_ = hubCallee.Unregister(ctx, reg)
			return fmt.Errorf("the hub's claim was provisional")
		}
		hubReg = reg
		return nil
	})
	var hubNode []route.MeshNode
	eventually(t, 10*time.Second, func() error {
		hubNode = other.r.MeshCallees("realm1", uri)
		if len(hubNode) != 1 {
			return fmt.Errorf("edge2 sees callees of %s on %v", uri, hubNode)
		}
		return nil
	})

	// Both claim workers are held across the heal: the hub's give-back
	// waits until edge1 has found its claim taken and edge1's worker is
	// held again; edge1 checks its claims once it hears the hub again
	// (heard first, edge2's join had it check while the hub was still
	// dead to it, and it took the claim back at once: no window).
	openHub := holdWorker(t, hub)
	openEdge := holdWorker(t, edge)
	settled := edge.n.claims.checksSettled.Load()
	px.restore()
	waitMesh(t, hub, edge, other)
	lost := edge.n.Stats().PeersLost.Load() + hub.n.Stats().PeersLost.Load()
	slow := func() {
		if edge.n.Stats().PeersLost.Load()+hub.n.Stats().PeersLost.Load() != lost {
			t.Skip("edge1 and the hub took each other for dead again after the heal (slow machine): nothing to check")
		}
	}
	openEdge()
	eventually(t, 10*time.Second, func() error {
		c := edge.n.claims
		if c.checksSettled.Load() == settled || c.recheck.Load() || edge.n.Stats().ClaimsReasserted.Load() == 0 {
			return fmt.Errorf("edge1's check after the join has not found its claim taken")
		}
		return nil
	})
	// edge2 has edge1's part (made first) now.
	eventually(t, 10*time.Second, func() error {
		if got := other.r.MeshCallees("realm1", uri); len(got) != 1 || slices.Equal(got, hubNode) {
			return fmt.Errorf("edge2 sees callees of %s on %v (the hub's: %v)", uri, got, hubNode)
		}
		return nil
	})
	eventually(t, 10*time.Second, func() error {
		if hubReg.Active() || !edgeReg.Active() {
			return fmt.Errorf("hub's registration active %v, edge's %v", hubReg.Active(), edgeReg.Active())
		}
		return nil
	})

	// edge1's worker is held (its next reconcile not come yet), then the
	// hub gives its claim back: the store holds none.
	openEdge = holdWorker(t, edge)
	stored := func() (string, error) {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		e, err := hub.n.claims.kv.Get(gctx, key)
		if err != nil {
			return "", err
		}
		return string(e.Value()), nil
	}
	if v, err := stored(); err != nil || v != string(hub.n.claims.value()) {
		slow()
		t.Fatalf("before the hub's give-back the store holds %q (%v), want the hub's claim", v, err)
	}
	openHub()
	eventually(t, 10*time.Second, func() error {
		v, err := stored()
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		slow()
		return fmt.Errorf("the store still holds %q (%v)", v, err)
	})
	slow()

	s := other.dial(other.ws(), proto.JSON)
	reg, err := s.Register(ctx, uri, h, nil)
	if err == nil {
		granted := time.Now()
		eventually(t, 10*time.Second, func() error {
			if reg.Active() {
				return fmt.Errorf("edge2's registration still stands")
			}
			return nil
		})
		t.Fatalf("a callee on edge2 was REGISTERED while edge1's registration stands (active %v): two exclusive registrations, for %v until edge2's was revoked", edgeReg.Active(), time.Since(granted).Round(time.Millisecond))
	}
	if wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on edge2: %v, want %s", err, proto.URIProcedureAlreadyExists)
	}

	// edge1 claims it back at its next reconcile; the store refuses it
	// from then on.
	openEdge()
	eventually(t, 10*time.Second, func() error {
		if v, err := stored(); err != nil || v != string(edge.n.claims.value()) {
			return fmt.Errorf("edge1 has not claimed it again: %q %v", v, err)
		}
		return nil
	})
	time.Sleep(other.n.WonHold() + 100*time.Millisecond)
	if _, err := s.Register(ctx, uri, h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on edge2 past the hold, asked of the store: %v, want %s", err, proto.URIProcedureAlreadyExists)
	}
	if !edgeReg.Active() {
		t.Fatal("edge1's registration was revoked")
	}
}

// holdWorker holds tn's claim worker (testHookNext) until the returned
// func is called (at the test's end at the latest): once it returns, the
// worker is blocked before its next job, and runs neither jobs nor its
// reconcile nor its check of the claims.
func holdWorker(t *testing.T, tn *tnode) (open func()) {
	gate, entered := make(chan struct{}), make(chan struct{})
	var in sync.Once
	hook := func() { in.Do(func() { close(entered) }); <-gate }
	tn.n.claims.testHookNext.Store(&hook)
	var once sync.Once
	open = func() { once.Do(func() { tn.n.claims.testHookNext.Store(nil); close(gate) }) }
	t.Cleanup(open)
	tn.n.Released(func() {}) // a job: the worker takes it and stops
	<-entered
	return open
}
