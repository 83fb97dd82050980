package edge

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

func TestRedactURLs(t *testing.T) {
	for _, c := range [][2]string{{"nats://u:p@h:1,nats://tok@h2:2", "nats://u:xxxxx@h:1,nats://xxxxx@h2:2"}, {"nats://h:1", "nats://h:1"}} {
		if g := redactURLs(c[0]); g != c[1] {
			t.Errorf("%s -> %s", c[0], g)
		}
	}
}

// A store directory that exists with group or other access is not
// tightened (it is the operator's), but the node says so at start.
func TestStoreDirPermissionsWarned(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuf{}
	_ = startNode(t, "hub", func(o *Options) {
		o.StoreDir = dir
		o.Leaf.Listen = edgetest.FreeAddr(t) // a hub: JetStream on
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	if !strings.Contains(logs.String(), "JetStream store directory is readable by others") {
		t.Fatalf("no warning about a 0755 store directory:\n%s", logs.String())
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
