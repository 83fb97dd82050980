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

// meshRevokeGraceForTest is route's meshRevokeGrace (1 s): how long a
// store grant is held for another node's single part still shown.
const meshRevokeGraceForTest = time.Second

// Within the mesh's hold after a conflict on heal (the hub's
// registration, made while it took edge1 for dead, lost to edge1's), the
// winner's node is killed. Standbys on the hub (the loser) and on edge2
// (which saw the conflict) retry their REGISTERs: their REGISTERs are
// held while the dead winner's callee is shown, refused, and one of them
// is granted once the winner is taken for dead (1.4 s after the kill at
// peer_timeout 1.5 s on loopback), not after the hold (5 s), and the
// other stays refused. Guards d38cc66 and 89345a8's holds against
// keeping a dead winner's procedure from its standbys.
func TestClaimWinnerKilledWithinHoldStandbyTakesOver(t *testing.T) {
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
	const uri = "com.holdkill"
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
	killHard(edge) // the winner's node dies within the hold
	killed := time.Now()
	type answer struct {
		tn  *tnode
		reg *client.Registration
		at  time.Duration
	}
	granted := make(chan answer, 2)
	stop := make(chan struct{})
	defer close(stop)
	for _, tn := range []*tnode{hub, other} { // the loser, and a node that saw the conflict
		standby := tn.dial(tn.ws(), proto.JSON)
		go func() {
			for {
				reg, err := standby.Register(ctx, uri, h, nil)
				select {
				case <-stop:
					return // the test has ended
				default:
				}
				switch {
				case err == nil:
					granted <- answer{tn, reg, time.Since(killed)}
					return
				case wampErr(err) != proto.URIProcedureAlreadyExists:
					t.Errorf("a standby on %s: %v", tn.n.opts.Name, err)
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	var got answer
	select {
	case got = <-granted:
	case <-time.After(time.Until(settled.Add(hub.n.WonHold()))):
		t.Fatalf("no standby was granted the dead winner's procedure within the hold (%v after the kill; peer_timeout %v)", time.Since(killed).Round(time.Millisecond), hub.n.opts.PeerTimeout)
	}
	t.Logf("%s's standby registered %v after the winner's node was killed", got.tn.n.opts.Name, got.at.Round(time.Millisecond))
	// The other standby stays refused: one exclusive registration.
	select {
	case a := <-granted:
		t.Fatalf("both standbys registered: %s's %v and %s's %v after the kill", got.tn.n.opts.Name, got.at, a.tn.n.opts.Name, a.at)
	case <-time.After(2 * meshRevokeGraceForTest):
	}
	if !got.reg.Active() {
		t.Fatalf("%s's standby registration was revoked", got.tn.n.opts.Name)
	}
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if e, err := hub.n.claims.kv.Get(gctx, claimKey("realm1", proto.MatchExact, uri)); err != nil || string(e.Value()) != string(got.tn.n.claims.value()) {
		t.Fatalf("the store does not hold %s's claim: %v", got.tn.n.opts.Name, err)
	}
}
