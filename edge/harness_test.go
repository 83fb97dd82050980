package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The test harness: real routers (route + loop on loopback), each with a
// real embedded NATS server through a Node, and real clients (package
// client) over WebSocket and RawSocket.

type tnode struct {
	t    *testing.T
	name string
	r    *route.Router
	n    *Node
	eng  *loop.Engine
	addr string
	once sync.Once
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("EDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode starts a router with a mesh node configured by mutate.
func startNode(t *testing.T, name string, mutate func(*Options)) *tnode {
	t.Helper()
	return startNodeConf(t, name, nil, mutate)
}

// startNodeConf is startNode with the router's configuration changed by
// conf (its clock, say).
func startNodeConf(t *testing.T, name string, conf func(*route.Config), mutate func(*Options)) *tnode {
	t.Helper()
	log := testLogger(t)
	rc := route.Config{
		Realms: []route.RealmConfig{{Name: "realm1"}},
		Shards: 2,
		Logger: log,
	}
	if conf != nil {
		conf(&rc)
	}
	r, err := route.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Router: r, Name: name, Logger: log}
	if mutate != nil {
		mutate(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	// Parked, as edgewamp runs a mesh node (tuning.park: auto).
	eng, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log, Park: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	tn := &tnode{t: t, name: name, r: r, n: n, eng: eng, addr: eng.Addrs()[0].String()}
	t.Cleanup(tn.stop)
	return tn
}

// stop shuts the node down cleanly (sessions get GOODBYE, the mesh is
// told).
func (tn *tnode) stop() {
	tn.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tn.eng.Shutdown(ctx)
		tn.n.Shutdown(ctx)
	})
}

func (tn *tnode) ws() string { return "ws://" + tn.addr + "/ws" }
func (tn *tnode) rs() string { return "rs://" + tn.addr }

func (tn *tnode) dial(url string, ser proto.Serializer) *client.Session {
	tn.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: url, Realm: "realm1", Serializer: ser})
	if err != nil {
		tn.t.Fatalf("dial %s: %v", url, err)
	}
	tn.t.Cleanup(func() { s.Close() })
	return s
}

// cluster starts n nodes meshed by NATS routes, each listing all the
// others (the production shape, which clustered JetStream needs), on
// ports picked free at run time, and waits until every node sees every
// other.
func cluster(t *testing.T, names ...string) []*tnode {
	t.Helper()
	return clusterWith(t, nil, names...)
}

// clusterWith is cluster with each node's options changed by mutate.
func clusterWith(t *testing.T, mutate func(*Options), names ...string) []*tnode {
	t.Helper()
	nodes := clusterNoWait(t, mutate, names...)
	waitMesh(t, nodes...)
	return nodes
}

// clusterNoWait is clusterWith without waiting for the nodes to see each
// other.
func clusterNoWait(t *testing.T, mutate func(*Options), names ...string) []*tnode {
	t.Helper()
	ports := make([]string, len(names))
	for i := range names {
		ports[i] = edgetest.FreeAddr(t)
	}
	var nodes []*tnode
	for i, name := range names {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "nats://"+p)
			}
		}
		listen := ports[i]
		tn := startNode(t, name, func(o *Options) {
			o.Cluster.Listen = listen
			o.Cluster.Routes = routes
			if mutate != nil {
				mutate(o)
			}
		})
		nodes = append(nodes, tn)
	}
	return nodes
}

// waitMesh waits until each node sees all the others.
func waitMesh(t *testing.T, nodes ...*tnode) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		for _, a := range nodes {
			if got := len(a.n.Peers()); got != len(nodes)-1 {
				return fmt.Errorf("%s sees %v", a.name, a.n.Peers())
			}
		}
		return nil
	})
}

// waitClaims waits until every node's claim store is bound (the JetStream
// bucket of single registrations has formed).
func waitClaims(t *testing.T, d time.Duration, nodes ...*tnode) {
	t.Helper()
	eventually(t, d, func() error {
		for _, n := range nodes {
			if !n.n.ClaimsReady() {
				return fmt.Errorf("%s: claim store not bound", n.name)
			}
		}
		return nil
	})
}

// within retries f until it returns nil or d passes, and reports whether
// it did.
func within(d time.Duration, f func() error) bool {
	deadline := time.Now().Add(d)
	for f() != nil {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// eventually retries f until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// callUntil calls proc until it stops failing with no_such_procedure
// (the registration is on its way through the mesh) within 5 s. A call
// its 5 s deadline canceled is tried again too, within 15 s: a node that
// just joined may take that long to route its first call on a loaded
// machine (TestLargeDirectoryReachesNewNodes failed so once, under -race
// next to other tests' load).
func callUntil(t *testing.T, s *client.Session, proc string, args []any) *client.Result {
	t.Helper()
	return callWithin(t, s, proc, args, 5*time.Second)
}

// callWithin is callUntil with the time proc may stay unknown.
func callWithin(t *testing.T, s *client.Session, proc string, args []any, unknown time.Duration) *client.Result {
	t.Helper()
	var res *client.Result
	start := time.Now()
	eventually(t, unknown+10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		res, err = s.Call(ctx, proc, args, nil, nil)
		if e, ok := err.(*client.Error); ok && e.URI == proto.URINoSuchProcedure {
			if time.Since(start) > unknown {
				t.Fatalf("call %s: still %v after %v", proc, err, unknown)
			}
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("call %s: %v (its deadline passed)", proc, err)
		}
		if err != nil {
			t.Fatalf("call %s: %v", proc, err)
		}
		return nil
	})
	return res
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// proxy is a TCP proxy between a node and what it dials, which a test can
// cut (close every connection), freeze (stop forwarding, keep the sockets
// open: a black hole) and restore.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen bool
	down   bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
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

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			for {
				p.mu.Lock()
				frozen := p.frozen
				p.mu.Unlock()
				if !frozen {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// cut closes every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// freeze stops forwarding without closing anything.
func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// restore forwards again; frozen connections are closed (a real black
// hole does not give its bytes back).
func (p *proxy) restore() {
	p.mu.Lock()
	wasFrozen := p.frozen
	conns := p.conns
	if wasFrozen {
		p.conns = nil
	}
	p.down = false
	p.mu.Unlock()
	if wasFrozen {
		for _, c := range conns {
			c.Close()
		}
	}
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
}

var _ = strings.Contains

// stallControl stalls tn's control dispatcher until the returned function
// (also run at the test's cleanup, before the nodes stop) releases it: it
// publishes a message of tn's own subject, which a test hook holds the
// dispatcher on (so that every peer was last heard before the stall).
// observe, if not nil, sees every other batch the dispatcher takes.
func stallControl(t *testing.T, tn *tnode, observe func([]*nats.Msg)) (release func()) {
	t.Helper()
	var nc *nats.Conn
	var err error
	if tn.n.srv != nil {
		nc, err = clientPort(tn.n)
	} else {
		nc, err = nats.Connect(tn.n.opts.NatsURL) // a node joined to a NATS deployment
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	trigger := nodeSubject(tn.name, "t")
	gate := make(chan struct{})
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	entered := make(chan struct{})
	var once sync.Once
	hook := func(ms []*nats.Msg) {
		if len(ms) == 1 && ms[0].Subject == trigger {
			once.Do(func() { close(entered) })
			<-gate
			return
		}
		if observe != nil {
			observe(ms)
		}
	}
	tn.n.testHookControl.Store(&hook)
	eventually(t, 10*time.Second, func() error {
		nc.Publish(trigger, nil)
		nc.Flush()
		select {
		case <-entered:
			return nil
		case <-time.After(50 * time.Millisecond):
			return fmt.Errorf("%s's control dispatcher did not stall", tn.name)
		}
	})
	return release
}

// hubAndEdge starts a hub and an edge node "edge1" joined to it through a
// leaf-node link that runs through a TCP proxy the test can cut, and
// waits until they see each other. The hub advertises the proxy, so that
// the edge does not learn the hub's own address and bypass the proxy when
// it reconnects.
func hubAndEdge(t *testing.T) (hub, edge *tnode, px *proxy) {
	t.Helper()
	return hubAndEdgeWith(t, func(*Options) {})
}

// hubAndEdgeWith is hubAndEdge with opt applied to both nodes' options
// (faster heartbeats and pings, say).
func hubAndEdgeWith(t *testing.T, opt func(*Options)) (hub, edge *tnode, px *proxy) {
	t.Helper()
	leafAddr := edgetest.FreeAddr(t)
	px = newProxy(t, leafAddr)
	hub = startNode(t, "hub", func(o *Options) { opt(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge = startNode(t, "edge1", func(o *Options) { opt(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	waitMesh(t, hub, edge)
	return hub, edge, px
}

// clientPort connects to n's embedded server's client port as the router
// does: with the password of its process when the mesh has no credential
// (startServer). Tests speak to the mesh as a node would through it.
func clientPort(n *Node) (*nats.Conn, error) {
	var opts []nats.Option
	if n.localPass != "" {
		opts = append(opts, nats.UserInfo(localUser, n.localPass))
	}
	return nats.Connect(n.srv.ClientURL(), opts...)
}
