package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// recheckSettled asks n's claim store to check its claims as a join
// does (recheckHeld) and waits until the request is settled; it returns
// the store reads it took.
func recheckSettled(t *testing.T, n *tnode) uint64 {
	t.Helper()
	c := n.n.claims
	reads, settled := c.checkReads.Load(), c.checksSettled.Load()
	c.recheckHeld()
	eventually(t, 20*time.Second, func() error {
		if c.checksSettled.Load() == settled {
			return fmt.Errorf("%s: the check of its claims did not end (%d store reads so far)", n.name, c.checkReads.Load()-reads)
		}
		return nil
	})
	return c.checkReads.Load() - reads
}

// Every node that joined (an edge's link flapping past the peer timeout,
// a restart) made every node read each claim it holds from the store
// again, one round trip each: ~840 reads a flap at 1,000 claims, and over
// an uplink of 50 ms a pass that a flapping edge restarted at each join
// never ended. A join now reads the store's state once and checks the
// claims again only when the store changed since the last complete check
// (a claim taken over or purged changes it, as a store that lost its
// claims does).
func TestClaimRecheckReadsOnlyAfterStoreChanged(t *testing.T) {
	t.Parallel()
	const claims = 200
	leafAddr := edgetest.FreeAddr(t)
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = leafAddr })
	waitClaims(t, 15*time.Second, hub)
	s := hub.dial(hub.ws(), proto.JSON)
	registerMany(t, s, "com.claims.", claims, 24)
	if r := recheckSettled(t, hub); r < claims {
		t.Fatalf("the first check of %d claims read the store %d times", claims, r)
	}
	const joins = 5
	var reads uint64
	for range joins {
		reads += recheckSettled(t, hub)
	}
	t.Logf("%d joins with the store unchanged: %d store reads", joins, reads)
	if reads > 2*joins {
		t.Errorf("%d joins with the store unchanged read it %d times (%d claims held), want at most %d", joins, reads, claims, 2*joins)
	}

	// Real joins: an edge that restarts three times (a new life each
	// time, joining the hub) leaves the store unchanged.
	c := hub.n.claims
	before := c.checkReads.Load()
	for range 3 {
		settled := c.checksSettled.Load()
		e := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
		waitMesh(t, hub, e)
		eventually(t, 20*time.Second, func() error {
			if c.checksSettled.Load() == settled {
				return fmt.Errorf("the hub has not settled the check of its claims after the edge joined (%d store reads)", c.checkReads.Load()-before)
			}
			return nil
		})
		e.stop()
	}
	reads = c.checkReads.Load() - before
	t.Logf("3 joins of a restarted edge: %d store reads", reads)
	if reads > 2*3 {
		t.Errorf("3 joins of a restarted edge, the store unchanged, read it %d times (%d claims held), want at most 6", reads, claims)
	}

	// A claim taken over behind the hub's back is still found at the next
	// join, and claimed again.
	uri := "com.claims.7."
	key := claimKey("realm1", proto.MatchExact, uri+strings.Repeat("x", 24-len(uri)))
	ctx := ctxT(t, 10*time.Second)
	e, err := hub.n.claims.kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if _, err := hub.n.claims.kv.Put(ctx, key, []byte("someone-else")); err != nil {
		t.Fatal(err)
	}
	was := hub.n.Stats().ClaimsReasserted.Load()
	if r := recheckSettled(t, hub); r < claims {
		t.Errorf("a join after the store changed read it %d times, want a check of every claim (%d)", r, claims)
	}
	if hub.n.Stats().ClaimsReasserted.Load() == was {
		t.Fatalf("the claim of %s taken over (revision %d) was not found at the next join", key, e.Revision())
	}
}
