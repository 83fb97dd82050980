package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// killNode ends tn as a crash would for its claims (left in the store
// under its life), the mesh told it left.
func killNode(tn *tnode) {
	tn.n.claims.close(time.Time{})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tn.n.Shutdown(sctx)
	cancel()
	tn.stop()
}

// A node c holds a single registration's claim in its first life, and
// restarts twice; another node a hears each of its lives, and each end.
// a remembered only the last life it saw end of each name (deadView), so
// c's first life, seen to end, was to a a life "not heard yet": a's
// REGISTER of the procedure waited peer_timeout (2 s) on the claim
// store's one worker, every other single REGISTER of a behind it, where
// README says a claim of a life seen to end is taken over at once.
func TestClaimOfAnEarlierLifeSeenToEndTakenAtOnce(t *testing.T) {
	t.Parallel()
	url, a, c := jsPair(t, "a", "c")
	ctx := ctxT(t, 20*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	if _, err := c.dial(c.ws(), proto.JSON).Register(ctx, "com.only", h, nil); err != nil {
		t.Fatalf("c registering a single procedure: %v", err)
	}
	for i := 0; i < 2; i++ {
		killNode(c)
		c = startNode(t, "c", func(o *Options) { o.NatsURL = url })
		waitMesh(t, a, c)
	}
	start := time.Now()
	_, err := a.dial(a.ws(), proto.JSON).Register(ctx, "com.only", h, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a registering the procedure c's first life held: %v", err)
	}
	if took > 700*time.Millisecond {
		t.Fatalf("a's REGISTER of a claim held by c's first life, which a saw end, took %v (peer_timeout %v): waited for as a life not heard",
			took.Round(time.Millisecond), a.n.opts.PeerTimeout)
	}
}
