package edge

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestKVDeleteRaceLosersGetRevision: Deletes of one key's revision sent at
// once from the three nodes of a cluster (two polls of an approved device
// code redeeming it on two nodes, two nodes' garbage collections) remove
// it once, and every other one fails with ErrKVRevision, as the Store
// contract oauth relies on says ("rev > 0 deletes only when the current
// revision is rev, else ErrRevision"). Before, a Delete that found the
// message by its revision and then lost the race to remove it got
// JetStream's own error (10057 "no message found", or 10043), which oauth
// took for a failing store: the loser's poll was answered 500 "the token
// store is unavailable" and logged as a store failure, where it re-reads
// and answers invalid_grant.
func TestKVDeleteRaceLosersGetRevision(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b", "c")
	kvs := []*KV{bindKV(t, ns[0], "delrace"), bindKV(t, ns[1], "delrace"), bindKV(t, ns[2], "delrace")}
	ctx := ctxT(t, 60*time.Second)
	const rounds, racers = 8, 6
	for round := range rounds {
		key := "dc.k" + strconv.Itoa(round)
		rev, err := kvs[0].Create(ctx, key, []byte("v"), 0)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, racers)
		start := make(chan struct{})
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = kvs[i%3].Delete(ctx, key, rev)
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrKVRevision) && !errors.Is(err, ErrKVNotFound):
				t.Errorf("round %d, racer %d: %v; want nil for the one that removed it, ErrKVRevision for the others", round, i, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d of %d Deletes of revision %d succeeded, want exactly 1", round, won, racers, rev)
		}
	}
}
