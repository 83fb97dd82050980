package edge

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// BenchmarkMeshEvents measures a node's event receive path: NATS → the
// node's inbound queue → the event dispatcher → the duplicate filter.
// A NATS client on loopback publishes event envelopes of one publication
// id to a subject the node subscribes to: after the first, each is a
// duplicate, counted and dropped by the dispatcher (the router's part,
// which does not change with the queue, is left out). The publisher
// keeps at most 1,024 messages ahead of the dispatcher, so that nothing
// is dropped for want of room.
func BenchmarkMeshEvents(b *testing.B) {
	for _, size := range []int{128, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchMeshEvents(b, size) })
	}
}

func benchMeshEvents(b *testing.B, size int) {
	benchReceive(b, size, func(n *Node, _ *route.Router, nc *nats.Conn, env []byte) (func() error, func() uint64) {
		n.Subscribe("realm1", proto.MatchExact, "com.bench")
		n.imu.Lock()
		var subj string
		for s := range n.interests["realm1"].subs {
			subj = s
		}
		n.imu.Unlock()
		env[0] = 'E'
		binary.LittleEndian.PutUint64(env[1:9], 1)
		return func() error { return nc.Publish(subj, env) }, n.stats.Duplicates.Load
	})
}

// benchReceive measures a node's receive path for messages of size
// bytes: prepare returns how a NATS client on loopback sends one (env,
// which prepare fills, as another node would) and how many the node has
// handled so far. The sender keeps at most 1,024 messages ahead of the
// node, so that nothing is dropped for want of room.
func benchReceive(b *testing.B, size int, prepare func(n *Node, r *route.Router, nc *nats.Conn, env []byte) (send func() error, handled func() uint64)) {
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
	nc, err := clientPort(n)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	send, handled := prepare(n, r, nc, make([]byte, size))
	// The node's subscription reaches its server asynchronously.
	for deadline := time.Now().Add(10 * time.Second); handled() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("the node receives nothing")
		}
		send()
		nc.Flush()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	const window = 1024
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	base := handled()
	for sent := 0; sent < b.N; {
		if uint64(sent)-(handled()-base) >= window {
			time.Sleep(20 * time.Microsecond)
			continue
		}
		if err := send(); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for deadline := time.Now().Add(30 * time.Second); handled()-base < uint64(b.N); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d received (slow consumer %d)", handled()-base, b.N, n.stats.SlowConsumer.Load())
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

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
