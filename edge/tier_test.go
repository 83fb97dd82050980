package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node in the middle of a leaf tree (leaf.remotes to a hub, and
// leaf.listen for edges of its own, as TestLeafOverlappingSubscriptions
// EventsOnce's m) keeps no JetStream of its own: the mesh has one claim
// store and one shared OAuth2 state, at the root of the tree. Before, it
// ran one (a leaf.listen without cluster.listen made a node a hub) in the
// mesh's one JetStream domain, and it and the edges below it used it
// instead of the hub's: a single procedure the hub held was REGISTERED
// again on the middle node (and the edges below it were told the middle
// node's claim), and a record the hub wrote in a shared bucket was not
// found there.
func TestMidTierLeafUsesTheRootStore(t *testing.T) {
	t.Parallel()
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = "127.0.0.1:0" })
	mid := startNode(t, "mid", func(o *Options) {
		o.Leaf.Listen = "127.0.0.1:0"
		o.Leaf.Remotes = []string{"nats://" + hub.n.LeafAddr().String()}
	})
	low := startNode(t, "low", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + mid.n.LeafAddr().String()} })
	waitMesh(t, hub, mid, low)
	waitClaims(t, 15*time.Second, hub, mid, low)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }
	if _, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "com.one", h, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := mid.dial(mid.ws(), proto.JSON).Register(ctx, "com.one", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the middle node registered a single procedure the hub holds: %v", err)
	}
	if _, err := low.dial(low.ws(), proto.JSON).Register(ctx, "com.two", h, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "com.two", h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the hub registered a single procedure an edge below the middle node holds: %v", err)
	}
	put := bindKV(t, hub, "tier")
	if _, err := put.Create(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*tnode{mid, low} {
		v, _, err := bindKV(t, tn, "tier").Get(ctx, "k")
		if err != nil || string(v) != "v" {
			t.Fatalf("%s reads the hub's shared record as %q, %v", tn.name, v, err)
		}
	}
}
