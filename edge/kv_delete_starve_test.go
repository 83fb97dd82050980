package edge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKVDeleteNotStarvedByWriter: a Delete of whatever a key holds (rev 0)
// succeeds while another node updates the key back to back, as the Store
// contract oauth relies on says ("rev 0 deletes unconditionally"). A
// Delete is a compare-and-set write of a marker from the revision it
// reads; before, it gave up after five refusals with ErrKVUnavailable
// "the key keeps changing": 8 of 20 such Deletes failed on a 3-node
// cluster (oauth's revocation of a login whose holder refreshes it in a
// loop answered 503; a purge, before 93f47c6, always succeeded). It now
// reads and tries again until its context's deadline.
func TestKVDeleteNotStarvedByWriter(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b", "c")
	kvs := []*KV{bindKV(t, ns[0], "delstarve"), bindKV(t, ns[1], "delstarve"), bindKV(t, ns[2], "delstarve")}
	ctx := ctxT(t, 60*time.Second)
	// The writer on the node of the stream's leader, the Deletes from
	// another: the writer's writes get there first.
	info, err := kvs[0].stream.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	lead := 0
	for i, tn := range ns {
		if tn.name == info.Cluster.Leader {
			lead = i
		}
	}
	w, d := kvs[lead], kvs[(lead+1)%3]
	// The Deletes' bound is generous (10 s, the bucket's default is 2 s):
	// on a loaded machine, with other clusters running, a try is slow.
	d.timeout = 10 * time.Second
	const key, deletes = "rt.hot", 20

	// The writer: Updates from the revision it last wrote, back to back;
	// when the key was deleted under it, it creates it again.
	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var rev uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if rev == 0 {
				rev, err = w.Create(ctx, key, []byte("v"), 0)
			} else {
				rev, err = w.Update(ctx, key, []byte("v"), rev, 0)
			}
			if err != nil {
				rev = 0
				if errors.Is(err, ErrKVExists) {
					if _, r, gerr := w.Get(ctx, key); gerr == nil {
						rev = r
					}
				}
				continue
			}
			writes.Add(1)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	failed := 0
	for i := range deletes {
		// The key is being written: wait for a few of the writer's
		// writes since the last Delete.
		from := writes.Load()
		eventually(t, 10*time.Second, func() error {
			if writes.Load() < from+3 {
				return errors.New("the writer does not write")
			}
			return nil
		})
		// One Delete, bounded by the bucket's timeout, as oauth's calls.
		if err := d.Delete(context.Background(), key, 0); err != nil {
			failed++
			t.Logf("Delete %d: %v", i, err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d Deletes (rev 0) of a key written back to back failed; want every one to succeed", failed, deletes)
	}
}
