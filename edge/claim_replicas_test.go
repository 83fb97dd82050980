package edge

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// The claim bucket made by an edge node (one that dials a hub and has no
// cluster routes of its own) on a hub cluster of three is replicated on
// three. Before, a node without cluster routes asked for one replica:
// an edge that bound the bucket before the hubs did (a mesh started at
// once, the hubs' JetStream still electing its leader) left every claim
// of the mesh on one hub node, in memory, and single registrations
// provisional mesh-wide while that node was down.
func TestClaimBucketMadeByAnEdgeIsReplicated(t *testing.T) {
	t.Parallel()
	// The bucket is gone, as if the hubs had not made it yet.
	leafAddr, _ := hubsWithoutClaimBucket(t)
	ctx := ctxT(t, 30*time.Second)
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitClaims(t, 30*time.Second, edge)
	info, err := edge.n.claims.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.Config.Replicas; r != 3 {
		t.Fatalf("the claim bucket an edge made on a hub cluster of three has %d replicas, want 3", r)
	}
}

// hubsWithoutClaimBucket starts a hub cluster of three (h1 takes leaf
// links at leafAddr), waits for its claim bucket, and deletes it; js is
// a JetStream client of h1's, closed at the test's end.
func hubsWithoutClaimBucket(t *testing.T) (leafAddr string, js jetstream.JetStream) {
	t.Helper()
	leafAddr = edgetest.FreeAddr(t)
	hubs := clusterWith(t, func(o *Options) {
		o.Cluster.Name = "hubs"
		if o.Name == "h1" {
			o.Leaf.Listen = leafAddr
		}
	}, "h1", "h2", "h3")
	waitClaims(t, 30*time.Second, hubs...)
	nc, err := clientPort(hubs[0].n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err = jetstream.NewWithDomain(nc, jsDomain)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	if err := js.DeleteStream(ctx, "KV_"+claimBucket); err != nil {
		t.Fatal(err)
	}
	return leafAddr, js
}
