//go:build !nomesh

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// TestMeshMetricsInvocationExpiresForReal: a call from an edge node's
// caller to a hub's callee that waits for its INTERRUPT, timed out at the
// edge while the uplink is cut (its interrupt lost with the link), is
// ended on the hub a second past its timeout, and the hub's meshMetrics,
// which /metrics serves as edgewamp_mesh_invocations_expired_total, reads
// 1 (TestMeshMetrics reads 0 on a quiet mesh whether or not meshMetrics
// fills the value in).
func TestMeshMetricsInvocationExpiresForReal(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	leafAddr := edgetest.FreeAddr(t)
	px := newCutProxy(t, leafAddr)
	start := func(name string, mutate func(*edge.Options)) (*route.Router, *edge.Node, string) {
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		o := edge.Options{Router: r, Name: name, Logger: log, PeerTimeout: 6 * time.Second}
		mutate(&o)
		n, err := edge.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			eng.Shutdown(ctx)
			n.Shutdown(ctx)
		})
		return r, n, "ws://" + eng.Addrs()[0].String() + "/ws"
	}
	hubR, hub, hubWS := start("hub", func(o *edge.Options) { o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	_, edgeN, edgeWS := start("edge1", func(o *edge.Options) { o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	until := func(d time.Duration, what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(d); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("after %v: %s", d, what)
			}
		}
	}
	meshed := func() bool { return len(hub.Peers()) == 1 && len(edgeN.Peers()) == 1 }
	until(15*time.Second, "the two nodes do not see each other", meshed)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callee, err := client.Dial(ctx, client.Config{URL: hubWS, Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	running := make(chan struct{}, 1)
	if _, err := callee.Register(ctx, "hub.block", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		running <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller, err := client.Dial(ctx, client.Config{URL: edgeWS, Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	until(10*time.Second, "hub.block not in the edge's directory", func() bool {
		res, err := caller.Call(ctx, "wamp.registration.lookup", []any{"hub.block"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	if v := meshMetrics(hub, hubR).InvocationsExpired; v != 0 {
		t.Fatalf("InvocationsExpired = %d before any call, want 0", v)
	}
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(ctx, "hub.block", nil, nil, &client.CallOptions{Timeout: 1500 * time.Millisecond})
		done <- err
	}()
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's callee did not get the call")
	}
	px.cut() // the interrupt sent at the timeout is lost
	if err := <-done; err == nil {
		t.Fatal("the call answered while its callee waits for an INTERRUPT")
	}
	time.Sleep(300 * time.Millisecond)
	px.restore()
	until(15*time.Second, "the two nodes do not see each other after the heal", meshed)
	until(10*time.Second, "the hub did not end the call a second past its timeout", func() bool { return hubR.MeshPending() == 0 })
	if hub.Stats().PeersLost.Load()+edgeN.Stats().PeersLost.Load() != 0 {
		t.Skip("a node took the other for dead during the cut: the call ended with its node, not expired")
	}
	if v := meshMetrics(hub, hubR).InvocationsExpired; v != 1 {
		t.Fatalf("meshMetrics' InvocationsExpired = %d after a call from the edge expired on the hub, want 1 (router counted %d)", v, hubR.MeshStats().InvocationsExpired.Load())
	}
}

// cutProxy forwards TCP to target; cut closes its connections and
// refuses new ones until restore.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
