package edge

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/route"
)

// BenchmarkMeshControl measures a node's control receive path: NATS →
// the node's control queue → the control dispatcher → the router's entry
// point for route envelopes. A NATS client on loopback sends envelopes
// to the node's inbox (ew.n.<node>.m) as another node would, of a kind
// the router does not know, so that the router counts each one at once
// (MeshStats.BadEnvelopes) and the router's own work, which does not
// change with the queue, is left out. The sender keeps at most 1,024
// messages ahead of the dispatcher, so that nothing is dropped for want
// of room.
func BenchmarkMeshControl(b *testing.B) {
	for _, size := range []int{128, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchMeshControl(b, size) })
	}
}

func benchMeshControl(b *testing.B, size int) {
	benchReceive(b, size, func(_ *Node, r *route.Router, nc *nats.Conn, env []byte) (func() error, func() uint64) {
		subj, from := nodeSubject("bench", "m"), nodeInbox("peer1")
		env[0] = 'Z' // no envelope kind: counted and dropped by the router
		return func() error { return nc.PublishRequest(subj, from, env) }, r.MeshStats().BadEnvelopes.Load
	})
}
