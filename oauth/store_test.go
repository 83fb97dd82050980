package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/oauth/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) oauth.Store { return oauth.NewMemStore() })
}

func TestDiskStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) oauth.Store {
		s, err := oauth.OpenDiskStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"rt.abc", true}, {"keys.ring", true}, {"uc.BCDF-GHJK", true}, {"rv.a_b=c", true}, {"x", true},
		{"", false}, {".rt", false}, {"rt.", false}, {"rt..a", false}, {"rt.a b", false},
		{"rt.a/b", false}, {"rt.*", false}, {"rt.>", false}, {"rt.é", false}, {strings.Repeat("a", 256), false},
	} {
		if got := oauth.ValidKey(tc.key); got != tc.ok {
			t.Errorf("ValidKey(%q) = %v, want %v", tc.key, got, tc.ok)
		}
	}
	s := oauth.NewMemStore()
	if _, err := s.Create(context.Background(), "bad key", nil, 0); err == nil {
		t.Error("MemStore accepted an invalid key")
	}
	if _, err := s.List(context.Background(), "rt"); err == nil {
		t.Error("MemStore accepted a List prefix without its dot")
	}
}

// The disk store keeps every entry, revision and deletion across a
// restart, and its revisions keep growing.
func TestDiskStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := s.Create(ctx, "rt.a", []byte("a1"), 0)
	r2, _ := s.Update(ctx, "rt.a", []byte("a2"), r1, 0)
	s.Create(ctx, "rt.gone", []byte("x"), 0)
	s.Delete(ctx, "rt.gone", 0)
	s.Create(ctx, "keys.ring", []byte(`{"k":1}`), 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "rt.late", nil, 0); err == nil {
		t.Fatal("a closed store accepted a write")
	}

	s, err = oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Get(ctx, "rt.a")
	if err != nil || string(e.Value) != "a2" || e.Revision != r2 {
		t.Fatalf("after restart rt.a = %q rev %d (%v), want a2 rev %d", e.Value, e.Revision, err, r2)
	}
	if _, err := s.Get(ctx, "rt.gone"); !errors.Is(err, oauth.ErrNotFound) {
		t.Fatalf("a deleted key came back: %v", err)
	}
	if _, err := s.Update(ctx, "rt.a", []byte("a3"), r1, 0); !errors.Is(err, oauth.ErrRevision) {
		t.Fatalf("stale revision accepted after restart: %v", err)
	}
	r4, err := s.Create(ctx, "rt.new", []byte("n"), 0)
	if err != nil || r4 <= r2 {
		t.Fatalf("revision after restart = %d (%v), want > %d", r4, err, r2)
	}
}

// One data directory, one process: a second open is refused.
func TestDiskStoreLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oauth.OpenDiskStore(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of %s: %v, want an in-use error", dir, err)
	}
	s.Close()
	s2, err := oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
	fi, err := os.Stat(filepath.Join(dir, "oauth.log"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("oauth.log mode %v, want 0600 (it holds private keys)", fi.Mode().Perm())
	}
}

// A crash in the middle of an append leaves a torn last record: it is cut
// off, the rest loads. A corrupt record before the end is an error.
func TestDiskStoreTornRecord(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := oauth.OpenDiskStore(dir)
	s.Create(ctx, "rt.a", []byte("a"), 0)
	s.Create(ctx, "rt.b", []byte("b"), 0)
	s.Close()
	path := filepath.Join(dir, "oauth.log")
	good, _ := os.ReadFile(path)
	const torn = `{"op":"put","k":"rt.c","v":"Y`
	os.WriteFile(path, append(append([]byte(nil), good...), torn...), 0o600)
	s, err := oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatalf("open with a torn tail: %v", err)
	}
	if n := s.TornBytes(); n != int64(len(torn)) {
		t.Fatalf("TornBytes %d, want the %d bytes of the torn record", n, len(torn))
	}
	if _, err := s.Get(ctx, "rt.b"); err != nil {
		t.Fatalf("rt.b lost: %v", err)
	}
	if _, err := s.Get(ctx, "rt.c"); !errors.Is(err, oauth.ErrNotFound) {
		t.Fatalf("torn rt.c: %v", err)
	}
	if _, err := s.Create(ctx, "rt.d", []byte("d"), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = oauth.OpenDiskStore(dir)
	if err != nil {
		t.Fatalf("reopen after the torn tail was cut: %v", err)
	}
	if n := s.TornBytes(); n != 0 {
		t.Fatalf("TornBytes %d after a clean reopen, want 0", n)
	}
	if e, err := s.Get(ctx, "rt.d"); err != nil || string(e.Value) != "d" {
		t.Fatalf("rt.d after reopen: %q %v", e.Value, err)
	}
	s.Close()

	lines := strings.SplitAfter(string(good), "\n")
	os.WriteFile(path, []byte("garbage\n"+strings.Join(lines, "")), 0o600)
	if _, err := oauth.OpenDiskStore(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("open with a corrupt first record: %v, want an error", err)
	}
}

// Many writes to few keys compact the log: its size stays bounded, and
// the entries survive. Eight writers share fsyncs (group commit).
func TestDiskStoreCompaction(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, _ := oauth.OpenDiskStore(dir)
	const writers, each = 8, 300
	revs := make([]uint64, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("ru.x%d", w)
			rev, err := s.Create(ctx, key, []byte("0"), 0)
			for i := 1; i <= each && err == nil; i++ {
				rev, err = s.Update(ctx, key, []byte(fmt.Sprint(i)), rev, 0)
			}
			if err != nil {
				t.Error(err)
			}
			revs[w] = rev
		}()
	}
	wg.Wait()
	fi, _ := os.Stat(filepath.Join(dir, "oauth.log"))
	if fi.Size() > 150<<10 {
		t.Errorf("log is %d bytes after %d updates of %d keys: not compacted", fi.Size(), writers*each, writers)
	}
	s.Close()
	s, _ = oauth.OpenDiskStore(dir)
	defer s.Close()
	for w := 0; w < writers; w++ {
		e, err := s.Get(ctx, fmt.Sprintf("ru.x%d", w))
		if err != nil || string(e.Value) != fmt.Sprint(each) || e.Revision != revs[w] {
			t.Fatalf("after compaction and restart: %q rev %d (%v), want %d rev %d", e.Value, e.Revision, err, each, revs[w])
		}
	}
}
