package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// BenchmarkMeshCallAcrossNodes measures a routed call across two nodes
// meshed by NATS routes, as the e2e mesh scenario does (bench/run-e2e.sh,
// "RPC across nodes") but in one process: 16 closed-loop callers on node
// A (RawSocket, MsgPack), one callee on node B, 64-byte arguments. Each
// op is one call. Beside the wall time it reports the process's CPU time
// per call (the two nodes, their NATS servers and the clients; steadier
// than the wall time on a shared machine) and the NATS messages each
// node's connection sent per call (how many envelopes share a frame).
func BenchmarkMeshCallAcrossNodes(b *testing.B) {
	a, bn := benchPair(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	callee := benchDial(b, bn.addr)
	if _, err := callee.Register(ctx, "com.bench.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		b.Fatal(err)
	}
	const callers = 16
	sess := make([]*client.Session, callers)
	for i := range sess {
		sess[i] = benchDial(b, a.addr)
	}
	arg := []any{string(make([]byte, 64))}
	// The registration reaches A through the mesh's directory.
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, err := sess[0].Call(ctx, "com.bench.echo", arg, nil, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Warm up: the tables, the queues' batches and the pools at their
	// working size.
	benchCalls(b, ctx, sess, arg, 20000)
	msgsA, msgsB := a.n.nc.Stats().OutMsgs, bn.n.nc.Stats().OutMsgs
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	benchCalls(b, ctx, sess, arg, b.N)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(a.n.nc.Stats().OutMsgs-msgsA)/float64(b.N), "natsA/op")
	b.ReportMetric(float64(bn.n.nc.Stats().OutMsgs-msgsB)/float64(b.N), "natsB/op")
}

// benchCalls makes n calls across sess, each session's calls one after
// the other.
func benchCalls(b *testing.B, ctx context.Context, sess []*client.Session, arg []any, n int) {
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, len(sess))
	for _, s := range sess {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if _, err := s.Call(ctx, "com.bench.echo", arg, nil, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

type benchNode struct {
	n    *Node
	eng  *loop.Engine
	addr string
}

// benchPair starts two routers, each with a mesh node, meshed by NATS
// routes (as cluster does for tests), parked as edgewamp runs a mesh
// node, and waits until each sees the other.
func benchPair(b *testing.B) (a, c *benchNode) {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ports := []string{edgetest.FreeAddr(b), edgetest.FreeAddr(b)}
	var nodes []*benchNode
	for i, name := range []string{"a", "b"} {
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 2, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		n, err := New(Options{Router: r, Name: name, Logger: log, Cluster: ClusterOptions{Listen: ports[i], Routes: []string{"nats://" + ports[1-i]}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(); err != nil {
			b.Fatal(err)
		}
		eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log, Park: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.Start(); err != nil {
			b.Fatal(err)
		}
		bn := &benchNode{n: n, eng: eng, addr: eng.Addrs()[0].String()}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			eng.Shutdown(ctx)
			n.Shutdown(ctx)
		})
		nodes = append(nodes, bn)
	}
	for deadline := time.Now().Add(15 * time.Second); len(nodes[0].n.Peers()) != 1 || len(nodes[1].n.Peers()) != 1; {
		if time.Now().After(deadline) {
			b.Fatal(fmt.Errorf("peers: %v, %v", nodes[0].n.Peers(), nodes[1].n.Peers()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nodes[0], nodes[1]
}

func benchDial(b *testing.B, addr string) *client.Session {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "rs://" + addr, Realm: "realm1", Serializer: proto.MsgPack})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkMeshSendAcrossNodes measures the mesh's own part of a message
// between two nodes, without clients or WAMP: node A's Send (as a shard
// hands it a call or a result) → its outbound queue and sender → nats.go
// and A's NATS server → the route → B's NATS server → B's connection,
// pump and control dispatcher → B's router, which counts the envelope at
// once (an envelope of no kind: MeshStats.BadEnvelopes). At most 16
// envelopes are in flight, as 16 closed-loop callers make. Each op is
// one envelope of 128 bytes; cpu-ns/op is the process's CPU time (both
// nodes) per envelope.
func BenchmarkMeshSendAcrossNodes(b *testing.B) {
	a, c := benchPair(b)
	var to route.MeshNode
	for idx := range a.n.peers.view.Load().subj {
		to = idx
	}
	env := make([]byte, 128)
	env[0] = 'Z'
	handled := c.n.r.MeshStats().BadEnvelopes.Load
	for deadline := time.Now().Add(10 * time.Second); handled() == 0; {
		if time.Now().After(deadline) {
			b.Fatal("node B receives nothing")
		}
		a.n.Send(to, env)
		time.Sleep(time.Millisecond)
	}
	send := func(n int) {
		const window = 16
		base := handled()
		for sent := 0; sent < n; {
			if uint64(sent)-(handled()-base) >= window {
				time.Sleep(20 * time.Microsecond)
				continue
			}
			if err := a.n.Send(to, env); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		for deadline := time.Now().Add(30 * time.Second); handled()-base < uint64(n); {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d received", handled()-base, n)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	send(20000)
	msgs := a.n.nc.Stats().OutMsgs
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	send(b.N)
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(a.n.nc.Stats().OutMsgs-msgs)/float64(b.N), "nats/op")
}
