package edge

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// An edge whose mesh credential the hub refuses (b96e9d1 made a hub
// without a credential refuse an edge that presents one, which it ignored
// before; or another token, or none to a hub that has one) never joins,
// NATS retrying the link every second, and the edge's only line at the
// default level named NATS's notion ("Leafnode Error 'Authorization
// Violation'"), no setting of edgewamp's. Now the line says which key.
func TestLeafCredentialRefusedSaysWhichKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, hub, edge string }{
		{"edge-token-hub-none", "", "s3cret-edge"},
		{"edge-none-hub-token", "s3cret-hub", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hub := startNode(t, "hub", func(o *Options) {
				o.Leaf.Listen, o.Token = "127.0.0.1:0", tc.hub
			})
			logs := &lockedBuf{}
			edge := startNode(t, "edge1", func(o *Options) {
				o.Leaf.Remotes, o.Token = []string{"nats://" + hub.n.LeafAddr().String()}, tc.edge
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			eventually(t, 5*time.Second, func() error {
				if !strings.Contains(logs.String(), "Authorization Violation") {
					return errors.New("no refusal yet")
				}
				return nil
			})
			const hint = "mesh.credentials"
			if l := logs.String(); !strings.Contains(l, hint) {
				t.Fatalf("the edge's log does not name %s:\n%s", hint, l)
			}
			if len(edge.n.Peers()) != 0 {
				t.Fatalf("the edge joined: it sees %v", edge.n.Peers())
			}
		})
	}
}
