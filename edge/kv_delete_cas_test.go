package edge

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestKVDeleteNotUndoneByConcurrentUpdate: a Delete and an Update from
// the revision it removes, sent at once from two nodes of a cluster,
// are linearizable: when both succeed, the Update came first and the key
// is gone; an Update after the Delete fails (the revision it names is
// gone). Before, JetStream checked the Update's expected revision when
// the stream's leader proposed it, while a deletion (a message delete or
// a subject purge) was proposed and not yet applied: both succeeded and
// the key came back with the Update's value. oauth ends a login by
// deleting its refresh-token family (a revocation, a refresh token used
// twice, a second use of an authorization code) while its holder may be
// refreshing on another node: the refresh's rotation brought the family
// back, its new refresh token working on (its access tokens refused only
// while the grant's revocation lasted, one access-token lifetime).
func TestKVDeleteNotUndoneByConcurrentUpdate(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b", "c")
	kvs := []*KV{bindKV(t, ns[0], "delcas"), bindKV(t, ns[1], "delcas"), bindKV(t, ns[2], "delcas")}
	ctx := ctxT(t, 60*time.Second)
	const rounds = 12
	back := 0
	for round := range rounds {
		key := "rt.k" + strconv.Itoa(round)
		rev, err := kvs[0].Create(ctx, key, []byte("v"), 0)
		if err != nil {
			t.Fatal(err)
		}
		var delErr, updErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			r := rev // a Delete of the revision, or (odd rounds) of whatever the key holds
			if round%2 == 1 {
				r = 0
			}
			delErr = kvs[1].Delete(ctx, key, r)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, updErr = kvs[2].Update(ctx, key, []byte("w"), rev, 0)
		}()
		close(start)
		wg.Wait()
		if updErr != nil && !errors.Is(updErr, ErrKVRevision) {
			t.Fatalf("round %d: Update: %v", round, updErr)
		}
		if delErr != nil && !errors.Is(delErr, ErrKVRevision) {
			t.Fatalf("round %d: Delete: %v", round, delErr)
		}
		if delErr == nil {
			// Deleted: an Update that succeeded too came first, and the
			// key reads absent (before, a third of the rounds found it back).
			if v, r, err := kvs[0].Get(ctx, key); !errors.Is(err, ErrKVNotFound) {
				back++
				t.Errorf("round %d: Delete succeeded (Update: %v) and the key holds %q (revision %d, %v): the Update undid the Delete", round, updErr, v, r, err)
				continue
			}
			// It is created again at once, on any node: the deletion
			// leaves nothing in the way.
			if _, err := kvs[round%3].Create(ctx, key, []byte("again"), 0); err != nil {
				t.Fatalf("round %d: Create after the Delete: %v", round, err)
			}
		}
	}
	// Each round left its key, once: no deletion marker is left behind.
	if info, err := kvs[0].stream.Info(ctx); err != nil {
		t.Error(err)
	} else if info.State.Msgs != rounds {
		t.Errorf("the bucket holds %d messages, want %d: one a key", info.State.Msgs, rounds)
	}
	if back > 0 {
		t.Errorf("%d of %d rounds: a deleted key came back", back, rounds)
	}
}
