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

// The claim store of a lone hub is in memory: a hub that restarts comes
// back with an empty store while its edges' single registrations stand.
// Before, nothing claimed them again: the store granted any node's
// REGISTER of such a procedure (REGISTERED), which the directory revoked a
// second later (GOODBYE wamp.close.killed for a client that does not
// announce registration_revocation). An edge now checks the claims it
// holds when a node joins (a restarted one too) and claims again those
// the store lost.
func TestClaimsAssertedAgainAfterTheStoreRestarts(t *testing.T) {
	t.Parallel()
	leafAddr := edgetest.FreeAddr(t)
	hubOpts := func(o *Options) { o.Leaf.Listen = leafAddr }
	hub := startNode(t, "hub", hubOpts)
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	edgeReg, err := edge.dial(edge.rs(), proto.JSON).Register(ctx, "com.kept", h, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The hub restarts under its name: its store comes back empty.
	hub.stop()
	hub = startNode(t, "hub", hubOpts)
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub)

	s := hub.dial(hub.ws(), proto.JSON)
	var last error
	if !within(4*time.Second, func() error {
		reg, err := s.Register(ctx, "com.kept", h, nil)
		if err == nil {
			last = fmt.Errorf("the restarted hub REGISTERED a single procedure the edge holds (edge reasserted %d claims)", edge.n.Stats().ClaimsReasserted.Load())
			s.Unregister(ctx, reg)
			return last
		}
		if wampErr(err) != proto.URIProcedureAlreadyExists {
			t.Fatalf("REGISTER on the restarted hub: %v", err)
		}
		return nil
	}) {
		t.Fatal(last)
	}
	if !edgeReg.Active() {
		t.Fatal("the edge's registration was revoked")
	}
}
