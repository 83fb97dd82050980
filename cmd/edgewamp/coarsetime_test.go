package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAwaitQuietConfigCoarseTimestamps (found by the review of d2af79b):
// the wait for a file being written (run's start, a reload's
// configuration, TLS certificates and JWKS file) trusted a modification
// time already configQuiet old, but a file system with whole-second
// timestamps (ext3, HFS+, NFS from such a server) or 2-second ones (FAT,
// a board's boot partition) reports a file being written now as modified
// up to 2 s ago: the wait returned at once, and the start read the part
// written so far. Here the writer sets the time such a file system
// reports (cut to the second, one second back: what FAT gives for half
// of each 2 s) after each chunk; the wait must return only once the
// writer is done.
func TestAwaitQuietConfigCoarseTimestamps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgewamp.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := []byte("# a line of the configuration being written\n")
	coarse := func() {
		m := time.Unix(time.Now().Unix()-1, 0)
		if err := os.Chtimes(path, m, m); err != nil {
			t.Error(err)
		}
	}
	if _, err := f.Write(chunk); err != nil {
		t.Fatal(err)
	}
	coarse()
	const chunks = 20
	written := make(chan struct{})
	go func() {
		defer close(written)
		for range chunks - 1 {
			time.Sleep(10 * time.Millisecond)
			if _, err := f.Write(chunk); err != nil {
				t.Error(err)
				return
			}
			coarse()
		}
	}()
	err = awaitQuietConfig(path, time.Now().Add(configSettleMax))
	select {
	case <-written:
	default:
		fi, _ := os.Stat(path)
		<-written // before the test ends: the writer reports through t
		t.Fatalf("awaitQuietConfig returned (%v) while the file was still being written (%d of %d bytes): its modification time, cut to the second, looked old enough", err, fi.Size(), chunks*len(chunk))
	}
	if err != nil {
		t.Fatalf("awaitQuietConfig: %v", err)
	}
	// A file left alone with such a time is taken at once, as any other.
	old := time.Unix(time.Now().Unix()-10, 0)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := awaitQuietConfig(path, time.Now().Add(configSettleMax)); err != nil {
		t.Fatalf("awaitQuietConfig of a file left alone: %v", err)
	}
}
