package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// Fault tests on separate edgewamp processes: SIGKILL a node mid-traffic,
// restart it, black-hole a node behind a TCP proxy. Each asserts on the
// timings it measures (with slack for a loaded machine; the figures are
// logged, and bench-e2e reports them) and on zero lost or duplicated
// messages where delivery was promised.

// traffic calls proc in a loop on s until stop, recording every outcome.
type traffic struct {
	mu      sync.Mutex
	ok      int
	errs    map[string]int
	lateErr []string // errors after the settle point
	settle  atomic.Int64
}

func runTraffic(ctx context.Context, s *client.Session, proc string, stop <-chan struct{}, wg *sync.WaitGroup) *traffic {
	tr := &traffic{errs: map[string]int{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := s.Call(cctx, proc, nil, nil, nil)
			cancel()
			tr.mu.Lock()
			if err == nil {
				tr.ok++
			} else {
				tr.errs[wampURI(err)]++
				if at := tr.settle.Load(); at != 0 && time.Now().UnixNano() > at {
					tr.lateErr = append(tr.lateErr, wampURI(err))
				}
			}
			tr.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return tr
}

// seqSub collects sequence-numbered events.
type seqSub struct {
	mu  sync.Mutex
	got []int64
}

func (q *seqSub) check(t *testing.T, n int64) {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	if int64(len(q.got)) != n {
		t.Errorf("subscriber got %d events, want exactly %d", len(q.got), n)
	}
	for i, v := range q.got {
		if v != int64(i) {
			t.Errorf("event %d is %d: lost, duplicated or reordered", i, v)
			return
		}
	}
}

func TestMeshSIGKILLAndRestart(t *testing.T) {
	t.Parallel()
	ps := processCluster(t, nil, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	register := func(s *client.Session, proc, invoke string, h client.Handler) {
		t.Helper()
		if _, err := s.Register(ctx, proc, h, &client.RegisterOptions{Invoke: invoke}); err != nil {
			t.Fatalf("register %s: %v", proc, err)
		}
	}
	quick := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	block := func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	calleeB := b.dial(b.ws(), proto.MsgPack)
	calleeC := c.dial(c.rs(), proto.CBOR)
	register(calleeB, "com.shared", "roundrobin", quick)
	register(calleeC, "com.shared", "roundrobin", quick)
	register(calleeB, "com.slow", "", block)

	callerA := a.dial(a.ws(), proto.JSON)
	callerC := c.dial(c.ws(), proto.JSON)
	defer callerA.Close()
	defer callerC.Close()
	callWhenKnown(t, callerA, "com.shared", nil)
	meshEventually(t, 10*time.Second, func() error {
		res, err := callerA.Call(ctx, "wamp.registration.lookup", []any{"com.slow"}, nil, nil)
		if err != nil || res.Args[0] == nil {
			return fmt.Errorf("com.slow not yet known on A: %v", err)
		}
		return nil
	})

	// Events from A to a subscriber on C: delivery between live nodes is
	// promised through B's death.
	sub := &seqSub{}
	subC := c.dial(c.ws(), proto.MsgPack)
	defer subC.Close()
	if _, err := subC.Subscribe(ctx, "com.seq", func(e *client.Event) {
		sub.mu.Lock()
		sub.got = append(sub.got, toI64(e.Args[0]))
		sub.mu.Unlock()
	}, nil); err != nil {
		t.Fatal(err)
	}
	// A presence service on C: B's sessions, which cannot say goodbye,
	// are announced gone once each, and A's and C's are not.
	var leftMu sync.Mutex
	left := map[uint64]int{}
	presC := c.dial(c.rs(), proto.JSON)
	defer presC.Close()
	if _, err := presC.Subscribe(ctx, "wamp.session.on_leave", func(e *client.Event) {
		leftMu.Lock()
		left[uint64(toI64(e.Args[0]))]++
		leftMu.Unlock()
	}, nil); err != nil {
		t.Fatal(err)
	}
	pub := a.dial(a.rs(), proto.MsgPack)
	defer pub.Close()
	meshEventually(t, 10*time.Second, func() error {
		pub.Publish(ctx, "com.probe", nil, nil, nil)
		if _, err := callerC.Call(ctx, "wamp.subscription.lookup", []any{"com.seq"}, nil, nil); err != nil {
			return err
		}
		// Interest of C's subscription has reached A when a probe on
		// com.seq arrives; probes are not counted.
		if err := pub.Publish(ctx, "com.seq", []any{-1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			return err
		}
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if len(sub.got) == 0 {
			return fmt.Errorf("no probe event yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	sub.mu.Lock()
	sub.got = nil
	sub.mu.Unlock()
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Publish(ctx, "com.seq", []any{seq.Load()}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			seq.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	trA := runTraffic(ctx, callerA, "com.shared", stop, &wg)
	trC := runTraffic(ctx, callerC, "com.shared", stop, &wg)

	// Calls in flight to B's callee.
	const inflight = 8
	type outcome struct {
		err error
		at  time.Time
	}
	slow := make(chan outcome, inflight)
	for i := 0; i < inflight; i++ {
		go func() {
			_, err := callerA.Call(ctx, "com.slow", nil, nil, nil)
			slow <- outcome{err, time.Now()}
		}()
	}
	time.Sleep(500 * time.Millisecond)

	b.kill(t)
	killed := time.Now()
	var last time.Duration
	for i := 0; i < inflight; i++ {
		o := <-slow
		if wampURI(o.err) != proto.URICanceled {
			t.Errorf("a call in flight to the killed node ended with %v, want ERROR %s", o.err, proto.URICanceled)
		}
		if d := o.at.Sub(killed); d > last {
			last = d
		}
	}
	meshEventually(t, 10*time.Second, func() error {
		res, err := callerA.Call(ctx, "wamp.registration.lookup", []any{"com.slow"}, nil, nil)
		if err != nil || res.Args[0] != nil {
			return fmt.Errorf("com.slow still registered on A: %v %v", res, err)
		}
		return nil
	})
	gone := time.Since(killed)
	// From here on no call may fail.
	settle := time.Now().Add(100 * time.Millisecond).UnixNano()
	trA.settle.Store(settle)
	trC.settle.Store(settle)
	t.Logf("SIGKILL: the last of %d calls in flight got its ERROR after %v; the node's registrations were gone from A after %v", inflight, last.Round(time.Millisecond), gone.Round(time.Millisecond))
	meshEventually(t, 10*time.Second, func() error {
		leftMu.Lock()
		defer leftMu.Unlock()
		if left[calleeB.ID()] == 0 {
			return fmt.Errorf("no wamp.session.on_leave on C for B's session %d (got %v)", calleeB.ID(), left)
		}
		return nil
	})
	t.Logf("SIGKILL: on_leave of B's session on C after %v", time.Since(killed).Round(time.Millisecond))
	if last > 4*time.Second || gone > 4*time.Second {
		t.Errorf("after SIGKILL: errors after %v, registrations gone after %v; want within 3 s", last, gone)
	}
	time.Sleep(time.Second)

	// Restart B: its new callee is callable from A and C within 2 s of
	// REGISTERED.
	b.restart(t)
	waitJoined(t, a, b, c)
	calleeB2 := b.dial(b.rs(), proto.JSON)
	if _, err := calleeB2.Register(ctx, "com.back", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"b"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	var callable time.Duration
	for _, s := range []*client.Session{callerA, callerC} {
		callWhenKnown(t, s, "com.back", nil)
		callable = time.Since(registered)
	}
	t.Logf("restart: callable from both other nodes %v after REGISTERED", callable.Round(time.Millisecond))
	if callable > 3*time.Second {
		t.Errorf("the restarted node's registration was callable after %v; want within 2 s", callable)
	}
	register(calleeB2, "com.shared", "roundrobin", quick)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Zero lost or duplicated events, and no call failed once the dead
	// node was out (the roundrobin traffic sent some calls to B before it
	// was detected: those got wamp.error.canceled, like the others in
	// flight to it).
	meshEventually(t, 5*time.Second, func() error {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		if int64(len(sub.got)) < seq.Load() {
			return fmt.Errorf("%d of %d events", len(sub.got), seq.Load())
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	sub.check(t, seq.Load())
	for name, tr := range map[string]*traffic{"A": trA, "C": trC} {
		tr.mu.Lock()
		t.Logf("traffic from %s: %d calls succeeded, errors %v", name, tr.ok, tr.errs)
		for uri := range tr.errs {
			if uri != proto.URICanceled {
				t.Errorf("traffic from %s: an error other than the killed node's in-flight calls: %s", name, uri)
			}
		}
		if len(tr.lateErr) > 0 {
			t.Errorf("traffic from %s: %d calls failed after the dead node was gone: %v", name, len(tr.lateErr), tr.lateErr)
		}
		if tr.ok == 0 {
			t.Errorf("traffic from %s: no call succeeded", name)
		}
		tr.mu.Unlock()
	}
	t.Logf("events A -> C through the kill and restart: %d, none lost or duplicated", seq.Load())
	leftMu.Lock()
	for id, n := range left {
		switch {
		case id == calleeB.ID():
			if n != 1 {
				t.Errorf("on_leave of B's session %d on C %d times, want once", id, n)
			}
		case id == callerA.ID() || id == callerC.ID() || id == pub.ID() || id == subC.ID() || id == calleeC.ID():
			t.Errorf("on_leave on C of session %d, which is still open on a live node", id)
		}
	}
	leftMu.Unlock()
	for _, p := range []*meshProc{a, c} {
		if l := p.logs(); strings.Contains(l, "panic") || strings.Contains(l, "DATA RACE") {
			t.Errorf("%s:\n%s", p.name, tail(l, 40))
		}
	}
}

// TestMeshBlackHoledProcess: node C sits behind a TCP proxy that stops
// forwarding without closing anything.
func TestMeshBlackHoledProcess(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrC := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	// Every connection of C goes through a proxy: A and B dial C through
	// pc, and what C dials (the addresses A and B advertise, learned from
	// the cluster's gossip) goes through pa and pb; A and B dial each other
	// directly. Freezing the three black-holes C and only C. A and B are
	// joined before C starts: had A heard of B from C first, it would have
	// dialled B at the address B advertises (pb), through the proxy.
	pa, pb, pc := newTCPProxy(t, addrA), newTCPProxy(t, addrB), newTCPProxy(t, addrC)
	advertise := func(p *tcpProxy) string {
		return writeConfig(t, "listeners: [{address: 127.0.0.1:0}]\nrealms: [{name: realm1}]\nmesh: {cluster: {advertise: \""+p.addr()+"\"}}\n")
	}
	a := startMeshProc(t, "a", "-config", advertise(pa), "-listen", "127.0.0.1:0", "-cluster-listen", addrA, "-cluster-routes", "nats://"+pc.addr()+",nats://"+addrB)
	b := startMeshProc(t, "b", "-config", advertise(pb), "-listen", "127.0.0.1:0", "-cluster-listen", addrB, "-cluster-routes", "nats://"+pc.addr()+",nats://"+addrA)
	waitJoined(t, a, b)
	c := startMeshProc(t, "c", "-config", advertise(pc), "-listen", "127.0.0.1:0", "-cluster-listen", addrC)
	waitJoined(t, a, b, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	calleeC := c.dial(c.ws(), proto.JSON)
	if _, err := calleeC.Register(ctx, "com.slow", func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	callerA := a.dial(a.ws(), proto.MsgPack)
	defer callerA.Close()
	meshEventually(t, 10*time.Second, func() error {
		res, err := callerA.Call(ctx, "wamp.registration.lookup", []any{"com.slow"}, nil, nil)
		if err != nil || res.Args[0] == nil {
			return fmt.Errorf("com.slow not yet known on A")
		}
		return nil
	})
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := callerA.Call(ctx, "com.slow", nil, nil, nil)
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for _, p := range []*tcpProxy{pa, pb, pc} {
		p.freeze()
	}
	frozen := time.Now()
	for i := 0; i < 4; i++ {
		if err := <-errs; wampURI(err) != proto.URICanceled {
			t.Fatalf("a call in flight to the black-holed node: %v", err)
		}
	}
	failed := time.Since(frozen)
	meshEventually(t, 10*time.Second, func() error {
		for _, p := range []*meshProc{a, b} {
			if !strings.Contains(p.logs(), `msg="mesh: node unreachable; taking it for dead" node=`+p.name+` peer=c`) {
				return fmt.Errorf("%s has not dropped c", p.name)
			}
		}
		return nil
	})
	detected := time.Since(frozen)
	t.Logf("black hole: calls in flight failed after %v, both peers dropped the node by %v", failed.Round(time.Millisecond), detected.Round(time.Millisecond))
	if failed > 4*time.Second {
		t.Errorf("a black-holed link took %v to be detected; want within 3 s", failed)
	}
	for _, p := range []*tcpProxy{pa, pb, pc} {
		p.restore()
	}
	waitJoined(t, a, b, c)
	callWhenKnown(t, callerA, "wamp.session.count", nil)
}

// tcpProxy forwards to a target and can freeze (stop forwarding, keep the
// sockets open) and restore.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
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
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			for {
				p.mu.Lock()
				f := p.frozen
				p.mu.Unlock()
				if !f {
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

func (p *tcpProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// restore closes the frozen connections (a black hole gives nothing
// back) and forwards new ones.
func (p *tcpProxy) restore() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
}

// TestClientFailover: a Go client (client.Connect) with both nodes' URLs
// survives the loss of its node: SIGKILL of the node it is on, and a
// black-holed connection (caught by its keepalive). It reconnects to the
// other node and restores its registration and subscription.
func TestClientFailover(t *testing.T) {
	t.Parallel()
	ps := processCluster(t, nil, "a", "b")
	a, b := ps[0], ps[1]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	px := newTCPProxy(t, a.addr) // the client reaches A through a proxy
	var sessions atomic.Int64
	events := make(chan int64, 16)
	cl, err := client.Connect(ctx, client.Config{Realm: "realm1", Serializer: proto.MsgPack, KeepAlive: 500 * time.Millisecond},
		client.ReconnectConfig{URLs: []string{"ws://" + px.addr() + "/ws", b.ws()}, MaxBackoff: 500 * time.Millisecond,
			OnSession: func(*client.Session) { sessions.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Register(ctx, "com.svc", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"svc"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Subscribe(ctx, "com.news", func(e *client.Event) { events <- toI64(e.Args[0]) }, nil); err != nil {
		t.Fatal(err)
	}
	caller := b.dial(b.ws(), proto.JSON)
	defer caller.Close()
	callWhenKnown(t, caller, "com.svc", nil)
	// 1. A black-holed connection: the keepalive notices, the client moves
	// to B.
	px.freeze()
	frozen := time.Now()
	meshEventually(t, 10*time.Second, func() error {
		if sessions.Load() < 2 {
			return fmt.Errorf("no new session yet")
		}
		return nil
	})
	t.Logf("keepalive: the client had a new session %v after its connection went dark", time.Since(frozen).Round(time.Millisecond))
	// Its registration comes back once the mesh has dropped the one on A
	// (A's session is gone only when A notices the dead connection: the
	// router's own keepalive), so allow for that.
	px.restore()
	start := time.Now()
	meshEventually(t, 60*time.Second, func() error {
		res, err := caller.Call(ctx, "com.svc", nil, nil, nil)
		if err != nil {
			return err
		}
		if res.Args[0] != "svc" {
			return fmt.Errorf("result %v", res.Args)
		}
		return nil
	})
	t.Logf("registration restored and callable %v after the move", time.Since(start).Round(time.Millisecond))
	meshEventually(t, 10*time.Second, func() error {
		if err := caller.Publish(ctx, "com.news", []any{1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			return err
		}
		select {
		case <-events:
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("subscription not restored")
		}
	})
	// 2. SIGKILL of the node the client is on (now B): it moves back to A.
	s, err := cl.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s
	callerA := a.dial(a.ws(), proto.JSON)
	defer callerA.Close()
	b.kill(t)
	killed := time.Now()
	meshEventually(t, 30*time.Second, func() error {
		res, err := callerA.Call(ctx, "com.svc", nil, nil, nil)
		if err != nil {
			return err
		}
		if res.Args[0] != "svc" {
			return fmt.Errorf("result %v", res.Args)
		}
		return nil
	})
	t.Logf("SIGKILL of the client's node: its procedure was callable on the other node again after %v (%d sessions in all)", time.Since(killed).Round(time.Millisecond), sessions.Load())
}
