package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClaimBucketOfEarlierReleaseBounded: a claim bucket made by a release
// before 8809c6a has no byte bound, and JetStream keeps a bucket's
// configuration: a node of this release bound it as it was, and the
// claims could still fill JetStream's memory (64 MiB on an embedded
// server, shared with the OAuth2 bucket) where README promises 16 MiB.
// The node sets the bound on the bucket it finds without it.
func TestClaimBucketOfEarlierReleaseBounded(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, 30*time.Second)
	url := jsServer(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// As an earlier release made it: no MaxBytes.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: claimBucket, Storage: jetstream.MemoryStorage, History: 1}); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	waitClaims(t, 10*time.Second, a)
	eventually(t, 10*time.Second, func() error {
		st, err := js.Stream(ctx, "KV_"+claimBucket)
		if err != nil {
			return err
		}
		if got := st.CachedInfo().Config.MaxBytes; got != claimBucketBytes {
			return fmt.Errorf("the claim bucket's MaxBytes is %d, want %d", got, claimBucketBytes)
		}
		return nil
	})
}

// TestClaimBucketOfEarlierReleaseBoundedReplicated: the same on a hub
// cluster of three, the bucket replicated on three (the update goes
// through the stream's Raft group), bound by an edge node joining.
func TestClaimBucketOfEarlierReleaseBoundedReplicated(t *testing.T) {
	t.Parallel()
	leafAddr, js := hubsWithoutClaimBucket(t)
	ctx := ctxT(t, 30*time.Second)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: claimBucket, Storage: jetstream.MemoryStorage, History: 1, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitClaims(t, 30*time.Second, edge)
	// The hubs' own view of the stream: the edge's claims.stream is the
	// claim worker's field (unsynchronised here, and nil while its lookup
	// has not been answered: a nil dereference under load killed the
	// test binary).
	eventually(t, 10*time.Second, func() error {
		st, err := js.Stream(ctx, "KV_"+claimBucket)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if got := info.Config.MaxBytes; got != claimBucketBytes || info.Config.Replicas != 3 {
			return fmt.Errorf("the claim bucket's MaxBytes is %d (replicas %d), want %d (3)", got, info.Config.Replicas, claimBucketBytes)
		}
		return nil
	})
}
