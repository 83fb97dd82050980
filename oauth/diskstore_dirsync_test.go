package oauth

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// A new oauth.log is made durable by its directory's fsync, not by the
// file's own: without it a power loss after the first writes (the
// generated key ring, the first refresh tokens, each fsynced and
// acknowledged) could leave no log at all. The directories the store
// makes (data_dir/oauth, and data_dir when it is new) are synced into
// their parents alike. Opening an existing store syncs nothing.
func TestDiskStoreSyncsNewDirectoryEntries(t *testing.T) {
	var mu sync.Mutex
	var synced []string
	prev := syncDirFn
	syncDirFn = func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return prev(dir)
	}
	t.Cleanup(func() { syncDirFn = prev })
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := synced
		synced = nil
		return out
	}

	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	dir := filepath.Join(dataDir, "oauth")
	s, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(context.Background(), "rt.a", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	got := took()
	for _, want := range []string{root, dataDir, dir} {
		if !slices.Contains(got, want) {
			t.Errorf("a new store in %s: directories synced %q, want %s among them", dir, got, want)
		}
	}
	s.Close()

	s, err = OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := took(); len(got) != 0 {
		t.Errorf("reopening an existing store synced %q, want nothing", got)
	}
}
