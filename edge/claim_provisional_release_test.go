package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A slow claim store: it takes a claim's write but answers after the
// claim's timeout, so the node holds the claim provisionally while the
// store has it under the node's name. Its callee unregisters before the
// store answers in time again. Before, a provisional claim was given back
// to nobody (it was taken for one the store never saw): the store kept
// the claim of a live node whose registration was gone, and every other
// node's REGISTER of the procedure was refused procedure_already_exists
// until this node left. Now the release of a provisional claim takes out
// of the store the entry this node's life wrote, if there is one.
func TestProvisionalClaimWrittenLateIsGivenBack(t *testing.T) {
	t.Parallel()
	_, a, b := jsPair(t, "a", "b")
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	sa := a.dial(a.ws(), proto.JSON)

	// The store stops answering in time: a release it does not take sets
	// the node's claims provisional at once (the store is down for it).
	down := func(string, error) error { return context.DeadlineExceeded }
	reg, err := sa.Register(ctx, "com.first", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.n.claims.testHookStore.Store(&down)
	if err := sa.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	before := a.n.Stats().ClaimsProvisional.Load()
	late, err := sa.Register(ctx, "com.late", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.n.Stats().ClaimsProvisional.Load() == before {
		t.Fatal("com.late was not claimed provisionally")
	}
	// Then the store is slow: releases are taken in time again, and the
	// claim of com.late, tried again by the worker's reconcile, is
	// written but answered too late.
	wrote := make(chan struct{})
	var once bool
	slow := func(op string, err error) error {
		if op == "create" && err == nil && !once {
			once = true
			close(wrote)
			return context.DeadlineExceeded
		}
		if op == "create" {
			return context.DeadlineExceeded
		}
		return err
	}
	a.n.claims.testHookStore.Store(&slow)
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not try the provisional claim again")
	}
	// The callee leaves while the claim is still provisional; the store
	// answers in time again.
	if err := sa.Unregister(ctx, late); err != nil {
		t.Fatal(err)
	}
	a.n.claims.testHookStore.Store(nil)

	// Another node can register the procedure: a's claim is gone.
	sb := b.dial(b.ws(), proto.JSON)
	var last error
	if !within(5*time.Second, func() error {
		_, err := sb.Register(ctx, "com.late", h, nil)
		if err != nil {
			last = fmt.Errorf("b's REGISTER of the procedure a's callee left: %v", err)
		}
		return err
	}) {
		t.Fatal(last)
	}
}
