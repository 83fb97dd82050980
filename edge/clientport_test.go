package edge

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The embedded server's client port (127.0.0.1, a random port) admits the
// router's own in-process connection only when the mesh has no credential
// (mesh.tls with a ca alone guards the route and leaf ports): before, any
// process of the machine, any user, that found the port (in
// /proc/net/tcp) joined the mesh with every right of a node, the shared
// OAuth2 state included, although the mesh's ports refused it without the
// mesh's certificate. Edges without credentials still join the hub's leaf
// port (through TLS here).
func TestClientPortAdmitsOnlyTheRouter(t *testing.T) {
	t.Parallel()
	serverCfg, _ := testTLS(t)
	logs := &lockedBuf{}
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen, o.TLS = "127.0.0.1:0", serverCfg
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	edge := startNode(t, "edge1", func(o *Options) {
		o.Leaf.Remotes, o.TLS = []string{"nats://" + hub.n.LeafAddr().String()}, serverCfg
	})
	waitMesh(t, hub, edge)
	rpcWorks(t, edge, hub)
	waitClaims(t, 15*time.Second, hub, edge)
	// Its users' passwords are the process's: NATS's warning about
	// plaintext passwords is not one for the operator.
	if l := logs.String(); strings.Contains(l, "level=WARN") {
		t.Fatalf("the hub warned:\n%s", l)
	}
	for _, tn := range []*tnode{hub, edge} {
		nc, err := nats.Connect(tn.n.srv.ClientURL(), nats.MaxReconnects(0), nats.Timeout(2*time.Second))
		if err == nil {
			sub, serr := nc.SubscribeSync(subjHeartbeat)
			var got error = errors.New("no heartbeat")
			if serr == nil {
				if _, err := sub.NextMsg(2 * time.Second); err == nil {
					got = nil
				}
			}
			nc.Close()
			t.Fatalf("%s's client port took a connection without credentials (heartbeats heard: %v)", tn.name, got == nil)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Logf("%s: %v", tn.name, err)
		}
	}
}
