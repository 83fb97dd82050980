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

// An edge node holding a single registration's claim is cut off from its
// hub; the hub takes it for dead and takes its claim over for a callee of
// its own. On heal the edge's registration, made first, wins the conflict
// and the hub revokes its callee, which gives its claim back: the store
// then held no claim at all for a registration that stands. Before, a
// third REGISTER of the procedure on the hub was granted by the store
// (REGISTERED) and revoked a second later by the directory (a client
// without registration_revocation would have been killed), again and
// again while the edge's callee lived. The edge now checks the claims it
// holds once a node that took it for dead (or that it took for dead) is
// heard again, and claims again those the store no longer has as its own.
func TestClaimTakenOverDuringPartitionAssertedAgainOnHeal(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		// Short, but not so short that a loaded machine's pauses cut
		// the links or drop the peers again after the heal.
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
	}
	leafAddr := edgetest.FreeAddr(t)
	px := newProxy(t, leafAddr)
	hub := startNode(t, "hub", func(o *Options) { fast(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge := startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	// Another edge, whose uplink stays up.
	other := startNode(t, "edge2", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge, other)
	waitClaims(t, 15*time.Second, hub, edge, other)
	ctx := ctxT(t, 60*time.Second)
	which := func(name string) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}
	}
	edgeReg, err := edge.dial(edge.rs(), proto.JSON).Register(ctx, "com.held", which("edge"), nil)
	if err != nil {
		t.Fatal(err)
	}

	// The uplink is cut: each side takes the other for dead, and the hub
	// takes the edge's claim over (a dead node's).
	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 1 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	// Taken over in the store, not provisionally (a store that did not
	// answer in time on a loaded machine): tried again until it is.
	var hubReg *client.Registration
	hubCallee := hub.dial(hub.ws(), proto.JSON)
	eventually(t, 15*time.Second, func() error {
		before := hub.n.Stats().ClaimsProvisional.Load()
		reg, err := hubCallee.Register(ctx, "com.held", which("hub"), nil)
		if err != nil {
			t.Fatalf("the hub could not take over the claim of the edge it took for dead: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			if err := hubCallee.Unregister(ctx, reg); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("the hub's claim was provisional")
		}
		hubReg = reg
		return nil
	})

	// Healed: the edge's registration was made first and stays, the
	// hub's is revoked.
	px.restore()
	waitMesh(t, hub, edge, other)
	eventually(t, 10*time.Second, func() error {
		if hubReg.Active() || !edgeReg.Active() {
			return fmt.Errorf("hub's registration active %v, edge's %v", hubReg.Active(), edgeReg.Active())
		}
		return nil
	})

	// The procedure stays the edge's: a REGISTER on the other edge is
	// refused once the edge has had a moment to claim it again (it is
	// free in the store once the hub has given it back), and one on the
	// hub at once.
	for _, tn := range []*tnode{other, hub} {
		s := tn.dial(tn.ws(), proto.JSON)
		var last error
		if !within(5*time.Second, func() error {
			reg, err := s.Register(ctx, "com.held", which(tn.name), nil)
			if err == nil {
				last = fmt.Errorf("a callee on %s was REGISTERED while the edge's registration stands", tn.name)
				// Let the directory revoke it before trying again.
				eventually(t, 10*time.Second, func() error {
					if reg.Active() {
						return fmt.Errorf("still active")
					}
					return nil
				})
				return last
			}
			if wampErr(err) != proto.URIProcedureAlreadyExists {
				t.Fatalf("REGISTER on %s: %v", tn.name, err)
			}
			return nil
		}) {
			t.Fatal(last)
		}
		for range 3 {
			if _, err := s.Register(ctx, "com.held", which(tn.name), nil); wampErr(err) != proto.URIProcedureAlreadyExists {
				t.Fatalf("REGISTER on %s of the edge's single procedure: %v, want %s", tn.name, err, proto.URIProcedureAlreadyExists)
			}
		}
	}
	if !edgeReg.Active() {
		t.Fatal("the edge's registration was revoked")
	}
	if edge.n.Stats().ClaimsReasserted.Load() == 0 {
		t.Fatal("the edge reasserted no claim")
	}
}

// After a conflict that a partition made, settled against the hub (its
// callee revoked, the procedure marked won by another node), the
// winner's callee on the edge unregisters and a standby on the hub
// registers at once, as README's handover promises: the claim is back in
// the store, and the hub must ask it even while its directory still
// shows the edge's callee (here held back by stalling the hub's control
// dispatcher, which reads the directory's changes). Before, the mark
// refused it procedure_already_exists for as long as the directory lagged,
// however long ago the conflict was settled.
func TestClaimLoserStandbyTakesOverAfterWinnerUnregisters(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
		o.testReconcile = 100 * time.Millisecond // WonHold 1.2 s
	}
	hub, edge, px := hubAndEdgeWith(t, fast)
	waitClaims(t, 15*time.Second, hub, edge)
	hold := hub.n.WonHold()
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	edgeCallee := edge.dial(edge.rs(), proto.JSON)
	edgeReg, err := edgeCallee.Register(ctx, "com.held", h, nil)
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
	var hubReg *client.Registration
	eventually(t, 15*time.Second, func() error {
		before := hub.n.Stats().ClaimsProvisional.Load()
		reg, err := hubCallee.Register(ctx, "com.held", h, nil)
		if err != nil {
			t.Fatalf("the hub could not take over the claim of the edge it took for dead: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			if err := hubCallee.Unregister(ctx, reg); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("the hub's claim was provisional")
		}
		hubReg = reg
		return nil
	})
	px.restore()
	waitMesh(t, hub, edge)
	eventually(t, 10*time.Second, func() error {
		if hubReg.Active() || !edgeReg.Active() {
			return fmt.Errorf("hub's registration active %v, edge's %v", hubReg.Active(), edgeReg.Active())
		}
		return nil
	})
	revoked := time.Now()
	// The edge claims it again (the hub gave its claim back on the
	// revoke) at its next reconcile: the mesh's WonHold after the revoke
	// the hub asks the store again.
	standby := hub.dial(hub.ws(), proto.MsgPack)
	if _, err := standby.Register(ctx, "com.held", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on the hub of the edge's single procedure: %v, want %s", err, proto.URIProcedureAlreadyExists)
	}
	eventually(t, 10*time.Second, func() error {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		e, err := hub.n.claims.kv.Get(gctx, claimKey("realm1", proto.MatchExact, "com.held"))
		if err != nil || string(e.Value()) != string(edge.n.claims.value()) {
			return fmt.Errorf("the edge has not claimed it again: %v", err)
		}
		return nil
	})
	// Past the hold, the store (the edge's claim) refuses it.
	time.Sleep(time.Until(revoked.Add(hold + 100*time.Millisecond)))
	if _, err := standby.Register(ctx, "com.held", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("REGISTER on the hub of the edge's single procedure, asked of the store: %v, want %s", err, proto.URIProcedureAlreadyExists)
	}

	// The handover: the hub reads no directory change until the store
	// has granted the standby's claim; its REGISTERED waits for the
	// edge's change (route's heldGrant).
	release := stallControl(t, hub, nil)
	if err := edgeCallee.Unregister(ctx, edgeReg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := standby.Register(ctx, "com.held", h, nil)
		done <- err
	}()
	eventually(t, 10*time.Second, func() error {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		e, err := hub.n.claims.kv.Get(gctx, claimKey("realm1", proto.MatchExact, "com.held"))
		if err != nil || string(e.Value()) != string(hub.n.claims.value()) {
			return fmt.Errorf("the store has not granted the standby's claim: %v", err)
		}
		return nil
	})
	release()
	if err := <-done; err != nil {
		t.Fatalf("a standby on the hub, registering after the edge's UNREGISTERED: %v (%v)", err, time.Since(start))
	}
}
