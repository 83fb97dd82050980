package edge

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Releases the claim store does not take (an edge node's uplink down) are
// kept and given back once it answers, at most maxReleaseJobs of them.
// The releases of claims accepted while the store was taken for down,
// never written to it, were kept too: they filled the bound with nothing
// to give back, and the release of a claim written before the outage
// that came after them was dropped, so that its procedure stayed refused
// mesh-wide for as long as the edge node lived. Here the bound is 20:
// 30 claims made during the outage are released, then one made before.
func TestOutageReleasesKeepTheWrittenClaims(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.testClaimQueue = 20 })
	waitClaims(t, 20*time.Second, hub, edge)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	const written = "com.device.before"
	sw := edge.dial(edge.rs(), proto.JSON)
	if _, err := sw.Register(ctx, written, h, nil); err != nil {
		t.Fatal(err)
	}
	px.cut()
	eventually(t, 10*time.Second, func() error {
		if edge.n.srv.NumLeafNodes() != 0 {
			return errors.New("the edge node's leaf link is still up")
		}
		return nil
	})
	// The store taken for down at once (its first claim would find it so
	// after claimWait): the worker's own flag, set on the worker.
	var down atomic.Bool
	down.Store(true)
	setDown := func() {
		if down.CompareAndSwap(true, false) {
			edge.n.claims.down = true
		}
	}
	edge.n.claims.testHookNext.Store(&setDown)
	const k = 30
	sp := edge.dial(edge.rs(), proto.JSON)
	for i := range k {
		if _, err := sp.Register(ctx, fmt.Sprintf("com.device.during%d", i), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := edge.n.stats.ClaimsProvisional.Load(); got != k {
		t.Fatalf("%d claims provisional, want %d", got, k)
	}
	// Both sessions leave during the outage, the provisional ones first.
	sp.Close()
	released := func() error {
		ch := make(chan struct{})
		edge.n.Released(func() { close(ch) })
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := released(); err != nil {
		t.Fatal(err)
	}
	sw.Close()
	if err := released(); err != nil {
		t.Fatal(err)
	}
	px.restore()
	waitMesh(t, hub, edge)
	// The claim written before the outage is given back: the hub
	// registers its procedure.
	sh := hub.dial(hub.rs(), proto.JSON)
	var last error
	if !within(8*time.Second, func() error {
		_, last = sh.Register(ctx, written, h, nil)
		return last
	}) {
		t.Fatalf("a single procedure whose session left the edge node during the outage is still refused elsewhere (%d releases dropped): %v", edge.n.stats.ReleasesDropped.Load(), last)
	}
}
