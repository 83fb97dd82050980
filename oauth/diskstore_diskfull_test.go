package oauth

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDiskStoreWritesAgainOnceThereIsRoom: a write that finds the disk
// full fails, and the log is cut back to where it ended, so that the
// store takes writes again once there is room. Before, any failed append
// was sticky: a disk full for a moment (a log that filled /var) made
// every token request, refresh and revocation fail until the router
// restarted, after the room was freed too. The log replays whole after.
// Needs a small file system of its own (a tmpfs mount, root only).
func TestDiskStoreWritesAgainOnceThereIsRoom(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("needs a tmpfs mount (root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "oauth")
	s, err := OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := context.Background()
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 56<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var stored []string
	failed := false
	for i := range 64 {
		k := fmt.Sprintf("rt.k%02d", i)
		if _, err := s.Create(ctx, k, make([]byte, 700), 0); err != nil {
			failed = true
			break
		}
		stored = append(stored, k)
	}
	if !failed {
		t.Fatal("64 writes of 700 bytes fit in the full file system: the test does not fill it")
	}
	os.Remove(filler)
	if _, err := s.Create(ctx, "rt.after", []byte("v"), 0); err != nil {
		t.Fatalf("a write once there is room again (after %d writes and one that found the disk full): %v, want it taken", len(stored), err)
	}
	stored = append(stored, "rt.after")
	s.Close()
	if s, err = OpenDiskStore(dir); err != nil {
		t.Fatalf("reopening the log: %v", err)
	}
	if s.TornBytes() != 0 {
		t.Fatalf("a torn record of %d bytes at the reopening", s.TornBytes())
	}
	for _, k := range stored {
		if _, err := s.Get(ctx, k); err != nil {
			t.Fatalf("%s after reopening: %v", k, err)
		}
	}
	if es, _ := s.List(ctx, "rt."); len(es) != len(stored) {
		t.Fatalf("%d entries after reopening, want %d", len(es), len(stored))
	}
}
