package edge

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
)

// A cluster of edges that dials a hub cluster under the same cluster name
// (both left at mesh.cluster.name's default) is refused by NATS, the leaf
// link retried every 30 s: the edges' log says which key to change. Before,
// only NATS's own line said it ("Leafnode connection dropped with same
// cluster name error"), naming no key of edgewamp's.
func TestLeafClusterNameClashSaysWhichKey(t *testing.T) {
	t.Parallel()
	l1 := edgetest.FreeAddr(t)
	hubs := clusterWith(t, func(o *Options) {
		if o.Name == "h1" {
			o.Leaf.Listen = l1
		}
	}, "h1", "h2")
	logs := &lockedBuf{}
	edges := clusterWith(t, func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + l1}
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}, "e1", "e2")
	const hint = "mesh.cluster.name"
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(logs.String(), "same cluster name") {
			return errors.New("no refusal yet")
		}
		return nil
	})
	if l := logs.String(); !strings.Contains(l, hint) {
		t.Fatalf("the edges' log does not name %s:\n%s", hint, l)
	}
	if len(hubs[0].n.Peers()) != 1 || len(edges[0].n.Peers()) != 1 {
		t.Fatalf("the clusters met: h1 sees %v, e1 %v", hubs[0].n.Peers(), edges[0].n.Peers())
	}
}
