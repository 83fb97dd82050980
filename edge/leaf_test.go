package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// An edge node joined to a hub through a leaf-node link that runs through
// a TCP proxy the test can cut.
func TestLeafEdgeAndHub(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdge(t)
	ctx := ctxT(t, 60*time.Second)

	// The edge's clients call procedures on the hub...
	hubCallee := hub.dial(hub.ws(), proto.MsgPack)
	if _, err := hubCallee.Register(ctx, "hub.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: append([]any{"hub"}, inv.Args...)}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	edgeCaller := edge.dial(edge.rs(), proto.CBOR)
	if res := callUntil(t, edgeCaller, "hub.echo", []any{1}); res.Args[0] != "hub" {
		t.Fatalf("edge -> hub: %v", res.Args)
	}
	// ...and the hub's clients call procedures on the edge and receive
	// its events.
	edgeCallee := edge.dial(edge.ws(), proto.JSON)
	if _, err := edgeCallee.Register(ctx, "edge.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: append([]any{"edge"}, inv.Args...)}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	hubCaller := hub.dial(hub.ws(), proto.JSON)
	if res := callUntil(t, hubCaller, "edge.echo", []any{2}); res.Args[0] != "edge" {
		t.Fatalf("hub -> edge: %v", res.Args)
	}
	events := make(chan *client.Event, 64)
	if _, err := hubCaller.Subscribe(ctx, "edge.telemetry", func(e *client.Event) { events <- e }, nil); err != nil {
		t.Fatal(err)
	}
	edgePub := edge.dial(edge.ws(), proto.MsgPack)
	waitEvent(t, edgePub, "edge.telemetry", events)

	// Exclusive registrations work from the edge through the hub's claim
	// store.
	eventually(t, 15*time.Second, func() error {
		if !edge.n.ClaimsReady() {
			return errors.New("the edge does not reach the hub's claim store")
		}
		return nil
	})
	if _, err := edgeCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := hubCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the hub registered a single procedure the edge holds: %v", err)
	}

	// Cut the uplink: the hub soon forgets the edge, and the edge keeps
	// serving its own clients, RPC and pubsub.
	px.cut()
	cutAt := time.Now()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 0 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	t.Logf("uplink cut detected by both sides after %v", time.Since(cutAt).Round(time.Millisecond))
	if _, err := hubCaller.Call(ctx, "edge.echo", nil, nil, nil); wampErr(err) != proto.URINoSuchProcedure {
		t.Fatalf("hub -> cut-off edge: %v", err)
	}
	localCaller := edge.dial(edge.ws(), proto.CBOR)
	if res, err := localCaller.Call(ctx, "edge.echo", []any{3}, nil, nil); err != nil || res.Args[0] != "edge" {
		t.Fatalf("local RPC on the cut-off edge: %v %v", res, err)
	}
	localEvents := make(chan *client.Event, 64)
	if _, err := localCaller.Subscribe(ctx, "edge.local", func(e *client.Event) { localEvents <- e }, nil); err != nil {
		t.Fatal(err)
	}
	if err := edgePub.Publish(ctx, "edge.local", []any{"x"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-localEvents:
	case <-time.After(5 * time.Second):
		t.Fatal("local pubsub on the cut-off edge")
	}
	// Both sides register the same single procedure during the partition:
	// the hub first (its claim store answers), then the edge (which cannot
	// reach the store and accepts it provisionally).
	which := func(name string) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}
	}
	hubReg, err := hubCallee.Register(ctx, "com.both", which("hub"), nil)
	if err != nil {
		t.Fatal(err)
	}
	edgeReg, err := edgeCallee.Register(ctx, "com.both", which("edge"), nil)
	if err != nil {
		t.Fatalf("the cut-off edge could not register a single procedure: %v", err)
	}
	if edge.n.Stats().ClaimsProvisional.Load() == 0 {
		t.Fatal("the edge's claim was not provisional")
	}

	// Restore it: routing across resumes by itself.
	px.restore()
	waitMesh(t, hub, edge)
	if res := callUntil(t, hubCaller, "edge.echo", []any{4}); res.Args[0] != "edge" {
		t.Fatalf("hub -> edge after heal: %v", res.Args)
	}
	if res := callUntil(t, edgeCaller, "hub.echo", []any{5}); res.Args[0] != "hub" {
		t.Fatalf("edge -> hub after heal: %v", res.Args)
	}
	waitEvent(t, edgePub, "edge.telemetry", events)
	// The duplicate single registration made during the partition is
	// settled: the hub's (made first) stays, the edge's is revoked, and
	// both nodes route com.both to the hub.
	eventually(t, 10*time.Second, func() error {
		if edgeReg.Active() || !hubReg.Active() {
			return fmt.Errorf("edge's registration active %v, hub's %v", edgeReg.Active(), hubReg.Active())
		}
		return nil
	})
	for _, s := range []*client.Session{hubCaller, edgeCaller} {
		if res := callUntil(t, s, "com.both", nil); res.Args[0] != "hub" {
			t.Fatalf("com.both answered by %v after heal", res.Args[0])
		}
	}
	// No duplicate single registration is left standing after the heal.
	if _, err := hubCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("after heal, the hub registered a single procedure the edge holds: %v", err)
	}
}

// waitEvent publishes on topic from pub until an event arrives on ch.
func waitEvent(t *testing.T, pub *client.Session, topic string, ch chan *client.Event) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if err := pub.Publish(context.Background(), topic, []any{"probe"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			return err
		}
		select {
		case <-ch:
			for len(ch) > 0 {
				<-ch
			}
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("no event")
		}
	})
}

// A node's overlapping subscriptions bring it each event once, whatever
// the path between publisher and subscriber: across a route, from a hub
// to its edge and back, from one edge to another through their hub
// (which relays), from an edge of one hub to an edge of the other
// through the hubs' route (m, a leaf of h2, to e1 and e2, leaves of h1),
// through an edge that is itself the hub of another edge, and to a node
// subscribed to the whole realm past
// max_interest. The node's event subscriptions are queue subscriptions in
// a group of its own, so NATS hands it each event once however many of
// them match; with a plain subscription per subject it handed it one copy
// per matching subject, which the duplicate filter dropped afterwards
// (Stats.Duplicates counted 3 per event on every node but the one
// subscribed to the whole realm: 360 for 120 events).
func TestLeafOverlappingSubscriptionsEventsOnce(t *testing.T) {
	// Not parallel: six nodes under the race detector, beside the
	// package's other parallel tests, loaded CI enough for links to
	// miss pings (a leaf link cut loses what it carried: NATS is at most
	// once) and nodes to be taken for dead.
	l1, l2 := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	hubs := clusterWith(t, func(o *Options) {
		o.Cluster.Name = "hubs"
		if o.Name == "h1" {
			o.Leaf.Listen = l1
		} else {
			o.Leaf.Listen = l2
		}
	}, "h1", "h2")
	e1 := startNode(t, "e1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + l1} })
	e2 := startNode(t, "e2", func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + l1}
		o.MaxInterest = 2 // its 4 subjects take the whole realm
	})
	l3 := edgetest.FreeAddr(t)
	m := startNode(t, "m", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + l2}; o.Leaf.Listen = l3 })
	e4 := startNode(t, "e4", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + l3} })
	nodes := append(hubs, e1, e2, m, e4)
	waitMesh(t, nodes...)
	ctx := ctxT(t, 120*time.Second)

	const topic = "ov.a.c"
	type sink struct {
		mu     sync.Mutex
		counts map[uint64]int
		seen   map[string]bool // publisher and number
	}
	sinks := make([]*sink, len(nodes))
	pubs := make([]*client.Session, len(nodes))
	for i, tn := range nodes {
		// One session overlaps: prefixes, a pattern and the exact topic
		// (4 NATS subjects, all matching the topic); another counts the
		// events it gets, by publication id.
		over := tn.dial(tn.rs(), proto.MsgPack)
		for _, s := range []struct{ uri, match string }{{"ov", "prefix"}, {"ov.a", "prefix"}, {"ov..c", "wildcard"}, {topic, ""}} {
			var opts *client.SubscribeOptions
			if s.match != "" {
				opts = &client.SubscribeOptions{Match: s.match}
			}
			if _, err := over.Subscribe(ctx, s.uri, func(*client.Event) {}, opts); err != nil {
				t.Fatal(err)
			}
		}
		sk := &sink{counts: map[uint64]int{}, seen: map[string]bool{}}
		sinks[i] = sk
		count := tn.dial(tn.rs(), proto.MsgPack)
		if _, err := count.Subscribe(ctx, topic, func(e *client.Event) {
			sk.mu.Lock()
			sk.counts[e.PublicationID]++
			sk.seen[fmt.Sprint(e.Args...)] = true
			sk.mu.Unlock()
		}, nil); err != nil {
			t.Fatal(err)
		}
		pubs[i] = tn.dial(tn.rs(), proto.MsgPack)
	}
	if e2.n.Stats().WideRealms.Load() != 1 {
		t.Fatalf("e2 did not take the whole realm (WideRealms %d)", e2.n.Stats().WideRealms.Load())
	}
	// Every node's interest has reached every other: each node hears a
	// probe from each other.
	heard := make([]map[string]bool, len(nodes))
	var hmu sync.Mutex
	for i, tn := range nodes {
		heard[i] = map[string]bool{}
		s := tn.dial(tn.rs(), proto.MsgPack)
		h := heard[i]
		if _, err := s.Subscribe(ctx, "ov.probe", func(e *client.Event) {
			hmu.Lock()
			h[fmt.Sprint(e.Args...)] = true
			hmu.Unlock()
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	nodeStats := func() string {
		var stats []string
		for _, tn := range nodes {
			st := tn.n.Stats()
			stats = append(stats, fmt.Sprintf("%s: events_dropped %d inbound_full %d slow_consumer %d disconnects %d peers_lost %d unknown %d",
				tn.name, st.EventsDropped.Load(), st.InboundFull.Load(), st.SlowConsumer.Load(), st.Disconnects.Load(), st.PeersLost.Load(), st.Unknown.Load()))
		}
		return strings.Join(stats, "; ")
	}
	eventually(t, 60*time.Second, func() error {
		for j, p := range pubs {
			if err := p.Publish(ctx, "ov.probe", []any{nodes[j].name}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		hmu.Lock()
		defer hmu.Unlock()
		for i, h := range heard {
			for _, tn := range nodes {
				if !h[tn.name] {
					return fmt.Errorf("%s has not heard %s (%s)", nodes[i].name, tn.name, nodeStats())
				}
			}
		}
		return nil
	})
	base := make([]uint64, len(nodes))
	// Link events: a leaf link cut, or a node taken for dead, loses what
	// it carried (NATS is at most once, README's Mesh section says so).
	links := func() (n uint64) {
		for _, tn := range nodes {
			st := tn.n.Stats()
			n += st.Disconnects.Load() + st.PeersLost.Load()
		}
		return n
	}
	for i, tn := range nodes {
		base[i] = tn.n.Stats().Duplicates.Load()
	}
	linksBefore := links()

	const each = 10
	ctx = ctxT(t, 60*time.Second)
	for k := 0; k < each; k++ {
		for i := range nodes {
			if err := pubs[i].Publish(ctx, topic, []any{nodes[i].name, k}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := each * len(nodes)
	var lost error
	within(20*time.Second, func() error {
		for i, sk := range sinks {
			sk.mu.Lock()
			n := len(sk.counts)
			sk.mu.Unlock()
			if n != want {
				var missing []string
				sk.mu.Lock()
				for _, p := range nodes {
					for k := 0; k < each; k++ {
						if !sk.seen[fmt.Sprint(p.name, k)] {
							missing = append(missing, fmt.Sprint(p.name, k))
						}
					}
				}
				sk.mu.Unlock()
				lost = fmt.Errorf("%s got %d of %d events (missing %v; %s)", nodes[i].name, n, want, missing, nodeStats())
				return lost
			}
		}
		lost = nil
		return nil
	})
	if lost != nil {
		// What this test is about is copies: a loss is a failure only
		// when no link was cut meanwhile (it failed so in a CI run beside
		// other load: 4 of 60 events missing on one node, the mesh's
		// nodes having lost peers).
		if links() == linksBefore {
			t.Fatal(lost)
		}
		t.Logf("events lost while links were cut (%d link events): %v", links()-linksBefore, lost)
	}
	time.Sleep(500 * time.Millisecond) // any copy still on its way
	for i, tn := range nodes {
		sk := sinks[i]
		sk.mu.Lock()
		for id, k := range sk.counts {
			if k != 1 {
				t.Errorf("%s: publication %d delivered %d times", tn.name, id, k)
			}
		}
		sk.mu.Unlock()
		if d := tn.n.Stats().Duplicates.Load() - base[i]; d != 0 {
			t.Errorf("%s dropped %d copies of %d events from other nodes as duplicates: NATS handed it an event more than once", tn.name, d, want-each)
		}
	}
}
