package oauth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// A compaction runs after a write is on disk. When it fails (the disk
// too full for the rewritten copy; here a directory in the way of its
// temporary file) the write still happened: it must not be reported as
// failed. Reported so, a refresh answered 503 had rotated its token
// already, and the client's retry with the old one was taken for reuse
// and ended the login; and every later write failed the same way while
// it succeeded. The store tries again once the log has grown as much
// again, and compacts once it can.
func TestDiskStoreWriteSucceedsWhenCompactionFails(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := os.Mkdir(filepath.Join(dir, "oauth.log.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	// 20 writers updating a key each (they share fsyncs): the log passes
	// 1,024 records, many times its live ones.
	const writers = 20
	revs := make([]uint64, writers)
	var failed atomic.Int32
	update := func(each int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, key := context.Background(), fmt.Sprintf("rt.fam%d", w)
				for range each {
					var nrev uint64
					var err error
					if revs[w] == 0 {
						nrev, err = s.Create(ctx, key, []byte("0"), 0)
					} else {
						nrev, err = s.Update(ctx, key, []byte("1"), revs[w], 0)
					}
					if err != nil {
						failed.Add(1)
						e, gerr := s.Get(ctx, key)
						if gerr != nil || e.Revision == revs[w] {
							t.Errorf("%s: %v, and it was not written (%v)", key, err, gerr)
							return
						}
						nrev = e.Revision // written all the same
					}
					revs[w] = nrev
				}
			}()
		}
		wg.Wait()
	}
	update(60)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 1,200 writes reported failed while they were written (the compaction after them failed)", n)
	}
	s.mu.Lock()
	tries := s.compactions
	s.mu.Unlock()
	if tries != 1 {
		t.Errorf("the failing compaction was tried %d times in the 175 writes past the bound, want once", tries)
	}
	// The obstacle gone, the log is compacted once it has grown again.
	os.Remove(filepath.Join(dir, "oauth.log.tmp"))
	update(60)
	s.mu.Lock()
	nrec, tries := s.nrec, s.compactions
	s.mu.Unlock()
	if tries != 2 || nrec > 1200 {
		t.Errorf("once it could: %d compactions tried, %d records in the log, want 2 and fewer than 1,200", tries, nrec)
	}
	s.Close()
	if s, err = OpenDiskStore(dir); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		if e, err := s.Get(context.Background(), fmt.Sprintf("rt.fam%d", w)); err != nil || e.Revision != revs[w] {
			t.Fatalf("after a restart rt.fam%d is rev %d (%v), want %d", w, e.Revision, err, revs[w])
		}
	}
}

// The same seen by a client: a refresh whose write is followed by a
// failing compaction was answered 503 with its token rotated, and the
// client's retry with the token it still held ended its login as reuse.
func TestRefreshWhenCompactionFails(t *testing.T) {
	dir := t.TempDir()
	ds, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	e := startEnv(t, func(o *Options) { o.Store = ds })
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	// Other writes bring the log past 1,024 records; the compaction is
	// made to fail.
	if err := os.Mkdir(filepath.Join(dir, "oauth.log.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, key := context.Background(), fmt.Sprintf("zz.pad%d", w)
			rev, err := ds.Create(ctx, key, []byte("0"), 0)
			for i := 0; i < 55 && err == nil; i++ {
				rev, err = ds.Update(ctx, key, []byte("1"), rev, 0)
			}
		}()
	}
	wg.Wait()
	for i := range 3 {
		next, err := refreshVia(e, cfg, tok.RefreshToken)
		if err != nil {
			// The client retries with the token it holds.
			_, rerr := refreshVia(e, cfg, tok.RefreshToken)
			t.Fatalf("refresh %d failed (%v); its retry: %v (%s)", i+1, err, rerr, retrieveErr(rerr))
		}
		tok = next
	}
}
