package edge

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// TestStoreStallNamedAtStart: a JetStream store whose read does not end
// (here a FIFO as a stream's meta.inf, as TestStopDuringMeshStart makes
// one; in the field a disk or network mount that does not answer) keeps
// the embedded NATS server from opening any listener, since it reads its
// store first. The start's error names that and the store's directory.
// Before: "not ready within 30s (a listen address in use?)", though an
// address in use is reported at once, and the listeners were not open.
func TestStoreStallNamedAtStart(t *testing.T) {
	defer func(w time.Duration) { natsReadyWait = w }(natsReadyWait)
	natsReadyWait = 2 * time.Second
	dir := filepath.Join(t.TempDir(), "store")
	stream := filepath.Join(dir, "jetstream", "$G", "streams", "KV_x")
	if err := os.MkdirAll(stream, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(stream, "meta.inf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// At the end, a writer that closes at once ends the server's read.
	defer func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	}()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Router: r, Name: "hub", Leaf: LeafOptions{Listen: "127.0.0.1:0"}, StoreDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Start() }()
	var e string
	select {
	case err := <-done:
		if err == nil {
			n.Shutdown(context.Background())
			t.Fatal("the node started on a store that cannot be read")
		}
		e = err.Error()
	case <-time.After(natsReadyWait + 20*time.Second):
		t.Fatal("the start did not end after its readiness wait")
	}
	t.Log(e)
	for _, want := range []string{"opened none of its listeners", "leaf.listen 127.0.0.1:0", "JetStream store", dir} {
		if !strings.Contains(e, want) {
			t.Errorf("the start's error does not say %q: %s", want, e)
		}
	}
	if strings.Contains(e, "in use") {
		t.Errorf("the start's error points at an address in use: %s", e)
	}
}
