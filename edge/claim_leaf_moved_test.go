package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// leafz reports whether tn's server has a leaf-node link with the node
// named name.
func leafz(t *testing.T, tn *tnode, name string) bool {
	t.Helper()
	lz, err := tn.n.srv.Leafz(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lz.Leafs {
		if l.Name == name {
			return true
		}
	}
	return false
}

// leafLinked waits until tn's leaf-node link with the node named name
// is up (up) or gone (!up).
func leafLinked(t *testing.T, tn *tnode, name string, up bool) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		switch got := leafz(t, tn, name); {
		case got && !up:
			return fmt.Errorf("the leaf link is still up")
		case !got && up:
			return fmt.Errorf("the leaf link is not back")
		}
		return nil
	})
}

// A hub of two clustered nodes (h1, h2), an edge listing both in its
// leaf remotes (the documented shape: "list every hub node"). The edge,
// linked to h1, holds a single procedure; its leaf link then moves to h2
// (a flap of h1's address: the edge reconnects to the next hub node),
// the edge alive all along and heard by h1 through h2. A REGISTER of the
// procedure on h1 must be refused as promptly as any other of a live
// node's (routeCloseGrace): its link to h1 is gone, but the edge is not
// dead. Before, h1 took the moved link for a killed edge's: the REGISTER
// waited 2 x peer_timeout before it was refused (4 s by default, and so
// each time a new wait began), and h1's claim worker walked its leaf
// links every 100 ms for as long as the edge stayed linked to h2.
func TestClaimOfEdgeWhoseLeafMovedIsRefusedPromptly(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 3*time.Second }
	c1, c2 := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	l1, l2 := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	p1, p2 := newProxy(t, l1), newProxy(t, l2)
	p2.cut() // the edge dials h1 first
	h1 := startNode(t, "h1", func(o *Options) {
		fast(o)
		o.Cluster.Listen, o.Cluster.Routes = c1, []string{"nats://" + c2}
		o.Leaf.Listen, o.Leaf.Advertise = l1, p1.addr()
	})
	h2 := startNode(t, "h2", func(o *Options) {
		fast(o)
		o.Cluster.Listen, o.Cluster.Routes = c2, []string{"nats://" + c1}
		o.Leaf.Listen, o.Leaf.Advertise = l2, p2.addr()
	})
	e := startNode(t, "e", func(o *Options) {
		fast(o)
		o.Leaf.Remotes = []string{"nats://" + p1.addr(), "nats://" + p2.addr()}
	})
	waitMesh(t, h1, h2, e)
	waitClaims(t, 15*time.Second, h1, h2, e)
	if !h1.n.wasRouted("e") {
		t.Fatal("h1 did not record its leaf link with e")
	}
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, e)
	s := h1.dial(h1.ws(), proto.JSON)
	lost := h1.n.Stats().PeersLost.Load()

	// The link moves to h2.
	p2.restore()
	p1.cut()
	eventually(t, 10*time.Second, func() error {
		if leafz(t, h1, "e") || !leafz(t, h2, "e") {
			return fmt.Errorf("e's leaf link has not moved to h2")
		}
		return nil
	})
	if h1.n.Stats().PeersLost.Load() != lost {
		t.Fatal("h1 took e for dead while its link moved (the move took longer than peer_timeout)")
	}
	// e is heard by h1 through h2 again.
	time.Sleep(3 * h1.n.opts.Heartbeat)

	start := time.Now()
	done := registerOnly(ctx, s)
	refusedPromptly(t, done, start, "REGISTER on h1 of the procedure of e, alive and linked to h2")
	if h1.n.Stats().PeersLost.Load() != lost {
		t.Fatal("h1 took e for dead")
	}
}

// An edge node, holding a single procedure, is killed and restarted
// under the same name at once (systemd's Restart=); its new life's leaf
// link is up before the hub hears that life (the hub's control
// dispatcher is held). A client's REGISTER of the procedure on the hub
// must wait for the old life to be seen to end, as for a cluster node
// restarted at once (87a39af), then be granted. Before, a leaf link was
// told by the server's name only: the new life's link was taken for the
// old life's, the claim got only routeCloseGrace (300 ms) and was
// refused procedure_already_exists (Autobahn does not retry it).
func TestClaimOfKilledLeafNodeRestartedAtOnceIsWaitedFor(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, time.Second }
	hub, edge, px := hubAndEdgeWith(t, fast)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, edge)
	s := hub.dial(hub.ws(), proto.JSON)
	release := stallControl(t, hub, nil)
	lz, err := hub.n.srv.Leafz(nil)
	if err != nil || len(lz.Leafs) != 1 {
		t.Fatalf("the hub's leaf links: %v, %v", lz, err)
	}
	old := lz.Leafs[0].ID
	killHard(edge)
	startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	eventually(t, 10*time.Second, func() error {
		lz, err := hub.n.srv.Leafz(nil)
		if err != nil {
			return err
		}
		if len(lz.Leafs) != 1 || lz.Leafs[0].ID == old {
			return fmt.Errorf("the new life's leaf link is not up")
		}
		return nil
	})
	done := registerOnly(ctx, s)
	// Long enough for a claim given only routeCloseGrace to be refused.
	stillWaits(t, done, 1200*time.Millisecond, "REGISTER on the hub of the procedure of the edge's killed life, while its new life's link is up and the hub has not heard it: %v, want it to wait")
	release()
	granted(t, ctx, done, "REGISTER on the hub of the procedure of the edge's killed life, once the hub heard its new life")
}

// The edge's leaf link to the hub flaps (closes and forms again, a new
// connection): a REGISTER on the hub of the procedure the live edge
// holds is refused promptly once the edge is heard over the new link,
// and a later kill of the edge is still waited for (the new link is the
// one it is judged by).
func TestClaimOfEdgeAfterItsLeafLinkFlapped(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 2*time.Second }
	hub, edge, px := hubAndEdgeWith(t, fast)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 30*time.Second)
	holdOnly(t, ctx, edge)
	s := hub.dial(hub.ws(), proto.JSON)
	lost := hub.n.Stats().PeersLost.Load()
	px.cut()
	leafLinked(t, hub, "edge1", false)
	px.restore()
	leafLinked(t, hub, "edge1", true)
	if hub.n.Stats().PeersLost.Load() != lost {
		t.Skip("the hub took the edge for dead during the flap (slow machine): nothing to check")
	}
	start := time.Now()
	done := registerOnly(ctx, s)
	refusedPromptly(t, done, start, "REGISTER on the hub of the live edge's procedure after a flap of its link")

	// Then the edge is killed: waited for.
	release := stallControl(t, hub, nil)
	killHard(edge)
	leafLinked(t, hub, "edge1", false)
	done = registerOnly(ctx, s)
	stillWaits(t, done, 500*time.Millisecond, "REGISTER on the hub of the procedure of the edge killed after a flap: %v, want it to wait")
	release()
	granted(t, ctx, done, "REGISTER on the hub of the procedure of the edge killed after a flap, once the hub took it for dead")
}
