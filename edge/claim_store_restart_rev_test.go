package edge

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A lone hub's claim store is in memory: restarted, it numbers its
// revisions from 1 again. An edge's claim written at revision 1 of the old
// store and another node's claim of the same procedure written at revision
// 1 of the new one look alike by revision: the edge's check of its claims
// (checkHeld) took the other node's claim for its own, kept it, and once
// the directory revoked the other node's callee (the edge's registration
// was made first) and that node gave its claim back, the store held no
// claim for the edge's standing registration, as before e845623.
func TestClaimCheckAfterStoreRestartTellsLivesApart(t *testing.T) {
	t.Parallel()
	leafAddr := edgetest.FreeAddr(t)
	hubOpts := func(o *Options) { o.Leaf.Listen = leafAddr }
	hub := startNode(t, "hub", hubOpts)
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	key := claimKey("realm1", proto.MatchExact, "com.kept")
	if _, err := edge.dial(edge.rs(), proto.JSON).Register(ctx, "com.kept", h, nil); err != nil {
		t.Fatal(err)
	}
	if e, err := hub.n.claims.kv.Get(ctx, key); err != nil || e.Revision() != 1 {
		t.Fatalf("the edge's claim: %v (want the store's first revision)", err)
	}

	// The edge's claim worker is held while the hub restarts, and the
	// restarted hub's own client registers the procedure: its store is
	// empty, so the claim is granted, at revision 1 again.
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	stall := func() { <-release }
	edge.n.claims.testHookNext.Store(&stall)
	edge.n.claims.recheckHeld() // takes the worker into the hook
	hub.stop()
	hub = startNode(t, "hub", hubOpts)
	waitClaims(t, 15*time.Second, hub)
	if _, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "com.kept", h, nil); err != nil {
		t.Fatalf("REGISTER on the restarted hub, its store empty: %v", err)
	}
	if e, err := hub.n.claims.kv.Get(ctx, key); err != nil || e.Revision() != 1 || string(e.Value()) == string(edge.n.claims.value()) {
		t.Fatalf("the hub's claim: %v", err)
	}
	waitMesh(t, hub, edge)
	edge.n.claims.testHookNext.Store(nil)
	free()

	// The directory keeps the edge's registration, made first; the hub's
	// callee goes and gives its claim back. The edge must hold the claim
	// in the store again.
	var last error
	if !within(10*time.Second, func() error {
		e, err := hub.n.claims.kv.Get(ctx, key)
		switch {
		case err != nil:
			last = fmt.Errorf("no claim in the store for the edge's registration (%v; edge reasserted %d)", err, edge.n.Stats().ClaimsReasserted.Load())
		case string(e.Value()) != string(edge.n.claims.value()):
			last = fmt.Errorf("the store's claim is %q's (revision %d), not the edge's", e.Value(), e.Revision())
		default:
			last = nil
		}
		return last
	}) {
		t.Fatal(last)
	}
}

// The same restart, and a release: the edge gave its claim back by the
// revision it had written, purging the key's entries up to it, and the
// restarted store's entries start again at 1: the edge's release, taken
// before its check of the claims it held, purged the claim another node
// had just been granted, whose registration then stood with no claim in
// the store. Until that check, a release goes by the store's value.
func TestClaimReleaseAfterStoreRestartKeepsAnotherNodesClaim(t *testing.T) {
	t.Parallel()
	leafAddr := edgetest.FreeAddr(t)
	hubOpts := func(o *Options) { o.Leaf.Listen = leafAddr }
	hub := startNode(t, "hub", hubOpts)
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	key := claimKey("realm1", proto.MatchExact, "com.kept")
	es := edge.dial(edge.rs(), proto.JSON)
	reg, err := es.Register(ctx, "com.kept", h, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The edge's claim worker is held; its callee unregisters (the
	// release waits for the worker), the hub restarts and its own client
	// registers the procedure, granted by the empty store.
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	stall := func() { <-release }
	edge.n.claims.testHookNext.Store(&stall)
	edge.n.claims.recheckHeld() // takes the worker into the hook
	if err := es.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	hub.stop()
	hub = startNode(t, "hub", hubOpts)
	waitClaims(t, 15*time.Second, hub)
	if _, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "com.kept", h, nil); err != nil {
		t.Fatalf("REGISTER on the restarted hub, its store empty: %v", err)
	}
	waitMesh(t, hub, edge)
	edge.n.claims.testHookNext.Store(nil)
	free()
	done := make(chan struct{})
	edge.n.Released(func() { close(done) })
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the edge's release did not end")
	}
	e, err := hub.n.claims.kv.Get(ctx, key)
	if err != nil || string(e.Value()) != string(hub.n.claims.value()) {
		t.Fatalf("the hub's claim after the edge's release: %v (its registration stands with no claim in the store)", err)
	}
}
