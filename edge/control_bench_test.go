package edge

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	n, err := New(Options{Router: r, Name: "bench", Logger: log, Cluster: ClusterOptions{Listen: "127.0.0.1:0"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	defer n.Shutdown(b.Context())
	nc, err := nats.Connect(n.srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	subj, from := nodeSubject("bench", "m"), nodeInbox("peer1")
	env := make([]byte, size)
	env[0] = 'Z' // no envelope kind: counted and dropped by the router
	bad := func() uint64 { return r.MeshStats().BadEnvelopes.Load() }
	for deadline := time.Now().Add(10 * time.Second); bad() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("the node receives nothing")
		}
		nc.PublishRequest(subj, from, env)
		nc.Flush()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	const window = 1024
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	base := bad()
	for sent := 0; sent < b.N; {
		if uint64(sent)-(bad()-base) >= window {
			time.Sleep(20 * time.Microsecond)
			continue
		}
		if err := nc.PublishRequest(subj, from, env); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for deadline := time.Now().Add(30 * time.Second); bad()-base < uint64(b.N); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d received (slow consumer %d)", bad()-base, b.N, n.stats.SlowConsumer.Load())
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	// The process's CPU time per message (the node, its NATS server and
	// the sender): steadier than the wall time on a shared machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if sc := n.stats.SlowConsumer.Load(); sc != 0 {
		b.Fatalf("%d dropped by NATS", sc)
	}
}
