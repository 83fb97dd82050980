package oauth

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// A write that finds the log past twice its live records compacts it.
// Every writer that appended before the rewrite saw the same, and the
// writers sharing an fsync (group commit) are many: each of them rewrote
// the whole log again, holding every write up while it did. A log is
// rewritten once each time it has grown past the bound.
func TestDiskStoreCompactsOncePerGrowth(t *testing.T) {
	s, err := OpenDiskStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const live = 600
	var wg sync.WaitGroup
	for g := 0; g < 30; g++ { // 30 at a time: they share fsyncs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < live; i += 30 {
				if _, err := s.Create(ctx, fmt.Sprintf("rt.live%d", i), make([]byte, 100), 0); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.compactions = 0
	s.mu.Unlock()
	// 32 writers updating a key each: 32 × 60 records on top.
	const writers, each = 32, 60
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("ru.x%d", w)
			rev, err := s.Create(ctx, key, []byte("0"), 0)
			for i := 1; i < each && err == nil; i++ {
				rev, err = s.Update(ctx, key, []byte(fmt.Sprint(i)), rev, 0)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	n := s.compactions
	s.mu.Unlock()
	// After a rewrite the log holds the live entries (about 632) and
	// one record; the next is due once it holds twice that: at most one
	// rewrite per 2,000 records written, and one for the records
	// written before the writers started.
	if most := writers*each/live + 1; n > most {
		t.Fatalf("%d records written over %d live entries: the log was rewritten %d times, want at most %d", writers*each, live+writers, n, most)
	}
	if n == 0 {
		t.Fatal("the log was never compacted")
	}
	t.Logf("%d rewrites", n)
}
