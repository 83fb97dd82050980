package oauth

import (
	"context"
	"testing"
)

// A write the disk store cannot append (the disk full, an I/O error)
// fails, and from then on every write fails (the error is sticky). Its
// change must not stay in memory: it did, and so did every later write's
// while each reported failure, so that a refresh answered 503 had rotated
// its token in memory and the client's retry with the token it held was
// taken for reuse and ended its login (the known item's case of a failed
// write; a failed fsync is left as it was).
func TestDiskStoreFailedWriteChangesNothing(t *testing.T) {
	ds, err := OpenDiskStore(t.TempDir())
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
	ctx := context.Background()
	before, err := ds.List(ctx, "rt.")
	if err != nil || len(before) != 1 {
		t.Fatalf("the login's family: %v %v", before, err)
	}
	// The log's descriptor fails every append from now on.
	ds.mu.Lock()
	ds.f.Close()
	ds.mu.Unlock()
	for i := range 3 {
		_, err := refreshVia(e, cfg, tok.RefreshToken)
		if code := retrieveErr(err); code != "temporarily_unavailable" {
			t.Fatalf("refresh %d on a store that cannot write: %v, want temporarily_unavailable (the client tries again later)", i+1, err)
		}
	}
	after, err := ds.Get(ctx, before[0].Key)
	if err != nil || after.Revision != before[0].Revision || string(after.Value) != string(before[0].Value) {
		t.Fatalf("the family after writes that failed: rev %d (%v), want it unchanged at rev %d", after.Revision, err, before[0].Revision)
	}
	if _, err := ds.Create(ctx, "rt.new", []byte("x"), 0); err == nil {
		t.Fatal("a write succeeded after the log failed")
	}
	if _, err := ds.Get(ctx, "rt.new"); err == nil {
		t.Fatal("a Create that failed left its key in the store")
	}
}
