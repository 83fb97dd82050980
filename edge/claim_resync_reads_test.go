package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/nats-io/nats.go"
)

// A node holding many claims resyncs a peer's directory whenever it
// missed one of its changes (NATS drops: a slow consumer, a full
// outbound queue). 22702a5 had every complete sync check the claims
// again (for a conflict's loser whose directory reached the winner
// after it revoked: its first sync after the heal), and any single
// REGISTER or UNREGISTER anywhere changes the store: every such resync
// then read each held claim from the store again. The hub (200 claims)
// misses each change of edge1's while a client there registers and
// unregisters a single procedure 5 times: it reads the store at most a
// few times, not a pass per resync.
func TestClaimResyncDoesNotRereadClaims(t *testing.T) {
	t.Parallel()
	const claims = 200
	leafAddr := edgetest.FreeAddr(t)
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = leafAddr })
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	waitClaims(t, 15*time.Second, hub, edge)
	registerMany(t, hub.dial(hub.ws(), proto.JSON), "com.claims.", claims, 24)
	// Until a check finds the store as the last pass left it (its state,
	// one read): recheckSettled returns at the first pass that ends, so a
	// pass under way when it asked (the join's, its worker late on a
	// loaded host) settled it, and its own request, queued behind that
	// pass (claimStore.again), made a whole pass after it, counted below
	// (1 of 10 runs under -race at load 24 read the store 202 times).
	eventually(t, 60*time.Second, func() error {
		if reads := recheckSettled(t, hub); reads > 1 {
			return fmt.Errorf("the hub's check of its claims read the store %d times", reads)
		}
		return nil
	})
	c := hub.n.claims
	drop := func(ms []*nats.Msg) {
		for _, m := range ms {
			if senderOf(m.Reply) == "edge1" && m.Subject == subjDelta {
				m.Subject = strings.Repeat("x", len(m.Subject))
			}
		}
	}
	hub.n.testHookControl.Store(&drop)
	t.Cleanup(func() { hub.n.testHookControl.Store(nil) })
	ctx := ctxT(t, 60*time.Second)
	s := edge.dial(edge.ws(), proto.JSON)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	const pairs = 5
	before, lost := c.checkReads.Load(), hub.n.Stats().PeersLost.Load()
	var reg *client.Registration
	for range pairs {
		for _, want := range []int{1, 0} {
			var err error
			if want == 1 {
				reg, err = s.Register(ctx, "com.churn", h, nil)
			} else {
				err = s.Unregister(ctx, reg)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The hub learns the change by a resync only.
			eventually(t, 10*time.Second, func() error {
				if got := len(hub.r.MeshCallees("realm1", "com.churn")); got != want {
					return fmt.Errorf("the hub sees %d nodes with callees of com.churn, want %d", got, want)
				}
				return nil
			})
		}
	}
	if hub.n.Stats().PeersLost.Load() != lost {
		t.Fatal("the hub lost edge1 meanwhile: its rejoin checks the claims")
	}
	reads := c.checkReads.Load() - before
	t.Logf("%d resyncs of edge1's directory, each after a single REGISTER or UNREGISTER: the hub (%d claims) read the store %d times", 2*pairs, claims, reads)
	if reads >= claims {
		t.Fatalf("%d resyncs of a peer's directory read the store %d times (%d claims held), want fewer than one check of every claim", 2*pairs, reads, claims)
	}
}
