package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestClaimStoreFullRefusesRegister: once the claim bucket is full (its
// own MaxBytes; before, it had none and shared JetStream's 64 MiB of
// memory, which ~460,000 single registrations filled), a claim the store
// refuses for want of room is not a store that does not answer: the
// REGISTER is refused with wamp.error.unavailable at once. Before, each
// node's first such claim held the claim worker for claimWait (3 s),
// retrying, then was accepted provisionally, and so was every later claim
// on every node (the store taken for down): exclusivity rested on the
// directory alone.
func TestClaimStoreFullRefusesRegister(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.testClaimBytes, o.testNoClaimShares = url, 4<<10, true })
	waitClaims(t, 10*time.Second, a)
	s := a.dial(a.ws(), proto.JSON)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	single := &client.RegisterOptions{Invoke: "single"}
	var refused error
	n := 0
	for ; n < 200 && refused == nil; n++ {
		_, refused = s.Register(ctx, fmt.Sprint("com.fill."+strings.Repeat("x", 64)+".", n), h, single)
	}
	if p := a.n.stats.ClaimsProvisional.Load(); p != 0 {
		t.Fatalf("%d claims accepted provisionally in a full claim store (%d REGISTERs, last error %v)", p, n, refused)
	}
	var we *client.Error
	if !errors.As(refused, &we) || we.URI != proto.URIUnavailable {
		t.Fatalf("%d REGISTERs in a 4 KiB claim store: last error %v, want %s", n, refused, proto.URIUnavailable)
	}
	if f := a.n.stats.ClaimsStoreFull.Load(); f != 1 {
		t.Fatalf("ClaimsStoreFull = %d, want 1", f)
	}
	t.Logf("refused after %d claims: %v", n-1, refused)
}

// TestClaimStoreFullReconcileKeepsStoreUp: a claim accepted
// provisionally during an outage is claimed again by reconcile; in a
// full store that take is refused for want of room. reconcile took that
// for a store that does not answer and set down again, every round, so
// every later claim of the node was accepted provisionally for as long
// as the store stayed full. It keeps that claim provisional (the
// directory settles it, as for a key another node holds) and the store
// up: later claims are refused.
func TestClaimStoreFullReconcileKeepsStoreUp(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) {
		o.NatsURL, o.testClaimBytes, o.testReconcile, o.testNoClaimShares = url, 4<<10, 100*time.Millisecond, true
	})
	waitClaims(t, 10*time.Second, a)
	s := a.dial(a.ws(), proto.JSON)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	single := &client.RegisterOptions{Invoke: "single"}
	uri := func(p string, i int) string { return fmt.Sprint(p+strings.Repeat("x", 64)+".", i) }
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		_, err = s.Register(ctx, uri("com.fill.", i), h, single)
	}
	if err == nil {
		t.Fatal("the 4 KiB claim store never filled")
	}
	// An outage: the store's answers lost while one claim is made.
	var outage atomic.Bool
	outage.Store(true)
	hook := func(op string, err error) error {
		if op == "create" && outage.Load() {
			return context.DeadlineExceeded
		}
		return err
	}
	a.n.claims.testHookStore.Store(&hook)
	if _, err := s.Register(ctx, uri("com.outage.", 0), h, single); err != nil {
		t.Fatalf("REGISTER during the outage: %v, want it accepted provisionally", err)
	}
	outage.Store(false)
	// Reconcile (every 100 ms) finds the store back, full: later claims
	// are refused, not accepted provisionally.
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; ; i++ {
		_, err := s.Register(ctx, uri("com.after.", i), h, single)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URIUnavailable {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 s after the outage, %d claims in a full store accepted provisionally (%d in all)", i+1, a.n.stats.ClaimsProvisional.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
