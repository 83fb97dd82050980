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
	fast := func(o *Options) { o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 2*time.Second }
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
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := e.dial(e.ws(), proto.JSON).Register(ctx, "com.only", h, nil); err != nil {
		t.Fatal(err)
	}
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
	done := make(chan error, 1)
	go func() {
		_, err := s.Register(ctx, "com.only", h, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if wampErr(err) != proto.URIProcedureAlreadyExists {
			t.Fatalf("REGISTER on h1 of the procedure of e, alive and linked to h2: %v, want %s", err, proto.URIProcedureAlreadyExists)
		}
		t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(1500 * time.Millisecond):
		t.Fatalf("REGISTER on h1 of the procedure of e, alive and linked to h2, still waits after 1.5 s (a killed node's wait is %v)", 2*h1.n.opts.PeerTimeout)
	}
	if h1.n.Stats().PeersLost.Load() != lost {
		t.Fatal("h1 took e for dead")
	}
}
