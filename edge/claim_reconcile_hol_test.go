package edge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The claims an edge node accepted provisionally while its uplink was
// down are claimed in the store once it answers again (reconcile), one
// round trip of the uplink each. reconcile took them all in one turn of
// the claim worker: every single REGISTER of the node, of a free
// procedure too, waited behind the whole backlog (k provisional claims
// times the uplink's round trip: 10,000 over 20 ms are more than three
// minutes). Here each store write of the edge node takes 10 ms more
// (an uplink's round trip), and a free procedure's REGISTER, sent once
// the backlog's first claim is written, must be answered while claims
// of the backlog are still waiting (the backlog goes on once its claim
// is queued). Whether the backlog is claimed in the end is read from the
// store itself: a write whose answer came too late on a loaded machine
// is taken again by an update, not a create.
func TestReconcileDoesNotHoldNewClaims(t *testing.T) {
	t.Parallel()
	// Reconcile every 500 ms, not 2 s: a round abandoned on a store
	// operation that outlasted claimTimeout on a loaded machine goes on
	// sooner (a turn's bound, which this test is about, is not a tick's).
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.testReconcile = 500 * time.Millisecond })
	waitClaims(t, 20*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }

	px.cut()
	eventually(t, 10*time.Second, func() error {
		if edge.n.srv.NumLeafNodes() != 0 {
			return errors.New("the edge node's leaf link is still up")
		}
		return nil
	})
	// The store taken for down at once (its first claim would find it so
	// after claimWait, 3 s): the worker's own flag, set on the worker.
	var down atomic.Bool
	down.Store(true)
	setDown := func() {
		if down.CompareAndSwap(true, false) {
			edge.n.claims.down = true
		}
	}
	edge.n.claims.testHookNext.Store(&setDown)
	const k = 16
	s := edge.dial(edge.rs(), proto.JSON)
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Register(ctx, fmt.Sprintf("com.backlog.p%d", i), h, nil); err != nil {
				t.Errorf("registering com.backlog.p%d with the uplink down: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if got := edge.n.stats.ClaimsProvisional.Load(); got != k {
		t.Fatalf("%d claims provisional, want %d", got, k)
	}

	// Each write of a claim 10 ms slower, as over an uplink.
	var creates atomic.Int64
	started := make(chan struct{})
	var once sync.Once
	queued := func() bool {
		edge.n.claims.qmu.Lock()
		defer edge.n.claims.qmu.Unlock()
		return len(edge.n.claims.q) > 0
	}
	slow := func(op string, err error) error {
		if op == "create" && err == nil {
			creates.Add(1)
			once.Do(func() {
				close(started)
				// The backlog goes on once com.free's claim is queued
				// behind it, however loaded the machine.
				for deadline := time.Now().Add(10 * time.Second); !queued() && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			})
			time.Sleep(10 * time.Millisecond)
		}
		return err
	}
	edge.n.claims.testHookStore.Store(&slow)
	px.restore()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the provisional claims were not claimed again after the uplink came back")
	}
	free := edge.dial(edge.rs(), proto.JSON)
	if _, err := free.Register(ctx, "com.free", h, nil); err != nil {
		t.Fatalf("registering a free single procedure: %v", err)
	}
	// Written are the backlog's claims taken so far and com.free's.
	if got := creates.Load(); got > k {
		t.Fatalf("the REGISTER of a free procedure was answered only after the whole backlog of %d provisional claims was claimed (%d writes)", k, got)
	}
	t.Logf("com.free answered after %d of %d provisional claims", creates.Load()-1, k)
	if got := edge.n.stats.ClaimsProvisional.Load(); got != k {
		t.Fatalf("com.free was accepted provisionally (%d provisional claims, want %d)", got, k)
	}
	// The backlog is claimed in the store in the end (reconcile's rounds:
	// one store round trip a claim, seconds on a loaded machine).
	keys := []string{claimKey("realm1", proto.MatchExact, "com.free")}
	for i := range k {
		keys = append(keys, claimKey("realm1", proto.MatchExact, fmt.Sprintf("com.backlog.p%d", i)))
	}
	eventually(t, 30*time.Second, func() error {
		mine, _, err := claimsHeldBy(ctx, hub, edge, keys)
		if err != nil {
			return err
		}
		if mine < k+1 {
			return fmt.Errorf("%d of %d claims written", mine, k+1)
		}
		return nil
	})
	sh := hub.dial(hub.rs(), proto.JSON)
	if _, err := sh.Register(ctx, "com.backlog.p0", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the hub registered a procedure the edge node holds: %v", err)
	}
}
