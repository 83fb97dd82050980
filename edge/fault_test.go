package edge

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A black-holed link: node B sits behind a TCP proxy that stops
// forwarding without closing anything. The others must notice within
// 3 s, fail the calls they had sent to B with an ERROR, and keep routing
// through the nodes they still reach.
func TestBlackHoledNode(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrC := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	// Every connection B has goes through a proxy: A and C dial B through
	// pb, and whatever B dials (the addresses A and C advertise, learned
	// from the cluster's gossip) goes through pa and pc. A and C dial each
	// other directly (their configured routes). Freezing the three proxies
	// black-holes B and only B.
	//
	// A and C are meshed before B starts: had A heard of C from B first,
	// it would have dialled C at the address C advertises (pc), and the
	// freeze would have cut A from C too (1 run in 25 did).
	pa, pb, pc := newProxy(t, addrA), newProxy(t, addrB), newProxy(t, addrC)
	a := startNode(t, "a", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Advertise = addrA, pa.addr()
		o.Cluster.Routes = []string{"nats://" + pb.addr(), "nats://" + addrC}
	})
	c := startNode(t, "c", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Advertise = addrC, pc.addr()
		o.Cluster.Routes = []string{"nats://" + pb.addr(), "nats://" + addrA}
	})
	waitMesh(t, a, c)
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen = addrB; o.Cluster.Advertise = pb.addr() })
	waitMesh(t, a, b, c)
	directRoute(t, a, c)
	ctx := ctxT(t, 60*time.Second)

	var onB, onC atomic.Int64
	for _, x := range []struct {
		n   *tnode
		cnt *atomic.Int64
	}{{b, &onB}, {c, &onC}} {
		s := x.n.dial(x.n.ws(), proto.JSON)
		cnt := x.cnt
		if _, err := s.Register(ctx, "com.shared", func(context.Context, *client.Invocation) (*client.Result, error) {
			cnt.Add(1)
			return &client.Result{Args: []any{"ok"}}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	slowB := b.dial(b.rs(), proto.CBOR)
	if _, err := slowB.Register(ctx, "com.slow", func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.MsgPack)
	eventually(t, 5*time.Second, func() error {
		if len(a.r.MeshCallees("realm1", "com.shared")) != 2 || len(a.r.MeshCallees("realm1", "com.slow")) != 1 {
			return fmt.Errorf("A's directory is not complete yet")
		}
		return nil
	})
	for i := 0; i < 10; i++ {
		if _, err := caller.Call(ctx, "com.shared", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if onB.Load() != 5 || onC.Load() != 5 {
		t.Fatalf("before the cut: B %d, C %d calls", onB.Load(), onC.Load())
	}
	// Calls in flight to B when the link goes dark.
	const inflight = 5
	errs := make(chan error, inflight)
	for i := 0; i < inflight; i++ {
		go func() {
			_, err := caller.Call(ctx, "com.slow", nil, nil, nil)
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for _, p := range []*proxy{pa, pb, pc} {
		p.freeze()
	}
	frozen := time.Now()
	for i := 0; i < inflight; i++ {
		err := <-errs
		if wampErr(err) != proto.URICanceled {
			t.Fatalf("a call in flight to the black-holed node: %v", err)
		}
	}
	failed := time.Since(frozen)
	eventually(t, 5*time.Second, func() error {
		if slices.Contains(a.n.Peers(), "b") || slices.Contains(c.n.Peers(), "b") {
			return fmt.Errorf("A sees %v, C sees %v", a.n.Peers(), c.n.Peers())
		}
		return nil
	})
	detected := time.Since(frozen)
	t.Logf("black hole: calls in flight failed after %v; both peers dropped the node after %v", failed.Round(time.Millisecond), detected.Round(time.Millisecond))
	if failed > 3500*time.Millisecond || detected > 3500*time.Millisecond {
		t.Errorf("detection took %v (calls failed after %v); want within 3 s", detected, failed)
	}
	// The shared registration keeps answering through C, with no error.
	before := onC.Load()
	for i := 0; i < 20; i++ {
		if _, err := caller.Call(ctx, "com.shared", nil, nil, nil); err != nil {
			t.Fatalf("call %d after the cut: %v", i, err)
		}
	}
	if onC.Load()-before != 20 {
		t.Fatalf("C took %d of 20 calls", onC.Load()-before)
	}
	// Heal: B comes back and is callable again.
	for _, p := range []*proxy{pa, pb, pc} {
		p.restore()
	}
	waitMesh(t, a, b, c)
	eventually(t, 5*time.Second, func() error {
		if len(a.r.MeshCallees("realm1", "com.shared")) != 2 {
			return fmt.Errorf("B's callee not back in A's directory")
		}
		return nil
	})
	beforeB := onB.Load()
	for i := 0; i < 10; i++ {
		if _, err := caller.Call(ctx, "com.shared", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if onB.Load()-beforeB != 5 {
		t.Fatalf("after heal B took %d of 10 calls", onB.Load()-beforeB)
	}
	waitNothingPending(t, a, c)
}

// The mesh's bounds: a node whose outbound queue is full drops events
// (counted) and fails calls with wamp.error.unavailable rather than
// queueing without limit. Large events travel one per NATS message; small
// ones are framed several per message, and the budget binds the same.
func TestOutboundBound(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		size, n    int
		budget     int64
		wantFrames bool
	}{
		{"60KiB events, 64KiB budget", 60 << 10, 300, 64 << 10, false}, // two do not fit a frame
		{"200B events, 4KiB budget", 200, 20000, 4 << 10, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			outboundFlood(t, c.size, c.n, c.budget, c.wantFrames)
		})
	}
}

func outboundFlood(t *testing.T, size, n int, budget int64, wantFrames bool) {
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	// The warm-up's events are told apart by their argument: one of them
	// arriving late (a CI run at load 30) was counted with the flood's
	// when a count reset after 100 ms stood for them.
	got, warm := atomic.Int64{}, atomic.Int64{}
	sub := b.dial(b.ws(), proto.MsgPack)
	if _, err := sub.Subscribe(ctx, "com.flood", func(e *client.Event) {
		if len(e.Args) == 1 && e.Args[0] == "warm-up" {
			warm.Add(1)
			return
		}
		got.Add(1)
	}, nil); err != nil {
		t.Fatal(err)
	}
	pub := a.dial(a.ws(), proto.MsgPack)
	eventually(t, 5*time.Second, func() error { // interest has reached A
		pub.Publish(ctx, "com.flood", []any{"warm-up"}, nil, &client.PublishOptions{Acknowledge: true})
		if warm.Load() == 0 {
			return fmt.Errorf("no event yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	// Shrink A's budget and flood.
	a.n.out.mu.Lock()
	a.n.out.max = budget
	a.n.out.mu.Unlock()
	big := make([]byte, size)
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.flood", []any{big}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	pub.Publish(ctx, "com.flood", nil, nil, &client.PublishOptions{Acknowledge: true})
	// PUBLISHED comes back once A's router has handed the event to the
	// mesh's queue; the drop, or the delivery on B, can come later. Wait
	// for all n+1 to be accounted for, re-reading both counters, then let
	// a duplicate have the time to show.
	var dropped uint64
	eventually(t, 10*time.Second, func() error {
		dropped = a.n.Stats().EventsDropped.Load()
		if got.Load()+int64(dropped) < int64(n)+1 {
			return fmt.Errorf("delivered %d + dropped %d < %d", got.Load(), dropped, n+1)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	dropped = a.n.Stats().EventsDropped.Load()
	st := a.n.Stats()
	t.Logf("flood of %d events of %d B through a %d B budget: %d delivered, %d dropped and counted; %d frames holding %d events",
		n, size, budget, got.Load(), dropped, st.Frames.Load(), st.FramedEnvelopes.Load())
	if got.Load()+int64(dropped) != int64(n)+1 { // the flood and the acknowledged publication after it
		t.Fatalf("delivered %d + dropped %d != %d published", got.Load(), dropped, n+1)
	}
	if dropped == 0 {
		t.Fatal("nothing dropped: the budget did not bind")
	}
	if a.r.MeshStats().SendFailed.Load() < dropped {
		t.Fatalf("route counted %d send failures, edge %d drops", a.r.MeshStats().SendFailed.Load(), dropped)
	}
	if wantFrames && st.Frames.Load() == 0 {
		t.Fatal("no frames: small events went one per NATS message")
	}
}

// directRoute fails the test unless every NATS route between x and y was
// dialled from the dialling side's configuration (not from an address
// gossiped by a third node, which may be a proxy).
func directRoute(t *testing.T, x, y *tnode) {
	t.Helper()
	for _, n := range []struct{ self, peer *tnode }{{x, y}, {y, x}} {
		rz, err := n.self.n.srv.Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteName == n.peer.name && r.DidSolicit && !r.IsConfigured {
				t.Fatalf("%s dialled %s at a gossiped address (%s:%d), not its configured route", n.self.name, n.peer.name, r.IP, r.Port)
			}
		}
	}
}
