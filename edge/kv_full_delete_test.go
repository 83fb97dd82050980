package edge

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKVDeleteInFullBucket: a bucket at its MaxBytes (writes refused,
// DiscardNew) still deletes, with a revision and without, so that what
// frees it (oauth's garbage collection, a login ended) works when it is
// most needed, and a Create fits again afterwards: Delete's marker, a
// write, is refused there when it is larger than the entry it replaces
// (values of a few bytes), and the entry is then removed directly.
func TestKVDeleteInFullBucket(t *testing.T) {
	t.Parallel()
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		ns := cluster(t, "a", "b", "c")
		testKVDeleteInFullBucket(t, ns[0])
	})
	t.Run("hub", func(t *testing.T) {
		t.Parallel()
		testKVDeleteInFullBucket(t, startNode(t, "hub", func(o *Options) { o.Leaf.Listen = "127.0.0.1:0" }))
	})
}

func testKVDeleteInFullBucket(t *testing.T, tn *tnode) {
	var kv *KV
	eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var err error
		kv, err = tn.n.KV(ctx, KVOptions{Name: "full", MaxBytes: 64 << 10})
		return err
	})
	ctx := ctxT(t, 60*time.Second)
	val := []byte(strings.Repeat("v", 4))
	var keys []string
	var revs []uint64
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("the bucket never filled")
		}
		k := "rt.f" + strconv.Itoa(i)
		rev, err := kv.Create(ctx, k, val, 0)
		if err != nil {
			t.Logf("full after %d entries: %v", i, err)
			break
		}
		keys, revs = append(keys, k), append(revs, rev)
	}
	if err := kv.Delete(ctx, keys[0], 0); err != nil {
		t.Errorf("Delete(rev 0) in a full bucket: %v", err)
	}
	if err := kv.Delete(ctx, keys[1], revs[1]); err != nil {
		t.Errorf("Delete(rev) in a full bucket: %v", err)
	}
	if _, err := kv.Create(ctx, "rt.again", val, 0); err != nil {
		t.Errorf("Create after two deletions in a full bucket: %v", err)
	}
}
