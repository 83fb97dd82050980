package edge

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// What one client connected to one node can make the other nodes hold, do
// or lose.

// registerMany registers n procedures named prefix<i><pad> (each URI
// about size bytes) on s, from a few goroutines.
func registerMany(t *testing.T, s *client.Session, prefix string, n, size int) {
	t.Helper()
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				uri := fmt.Sprintf("%s%d.", prefix, i)
				uri += strings.Repeat("x", max(1, size-len(uri)))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := s.Register(ctx, uri, h, nil)
				cancel()
				if err != nil {
					errc <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A client may hold tens of thousands of registrations (the per-session
// bound is 65,536) with URIs up to 4 KiB: its node's directory then
// exceeds one NATS message. The directory sync (a node joining, a
// restart, any lost change) must still reach the other nodes, or every
// registration of that node, the other clients' included, stays unknown
// there.
func TestLargeDirectoryReachesNewNodes(t *testing.T) {
	t.Parallel()
	ports := []string{edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)}
	routes := func(i int) []string {
		var r []string
		for j, p := range ports {
			if j != i {
				r = append(r, "nats://"+p)
			}
		}
		return r
	}
	start := func(i int, name string) *tnode {
		return startNode(t, name, func(o *Options) {
			o.Cluster.Listen, o.Cluster.Routes = ports[i], routes(i)
			// A smaller message bound than the default 24 MiB, so that a
			// directory larger than one message takes 800 registrations,
			// not 6,400: the test's cost, not its point.
			o.MaxPayload = 2 << 20
		})
	}
	a, b := start(0, "a"), start(1, "b")
	waitMesh(t, a, b)
	ctx := ctxT(t, 120*time.Second)
	legit := a.dial(a.rs(), proto.JSON)
	if _, err := legit.Register(ctx, "com.legit", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"ok"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	hostile := a.dial(a.rs(), proto.JSON)
	registerMany(t, hostile, "com.big.", 800, 4000) // about 3.2 MB of directory, over the 2 MiB bound
	c := start(2, "c")
	waitMesh(t, a, b, c)
	caller := c.dial(c.ws(), proto.JSON)
	// The point is that the directory reaches C at all (it never did
	// when it was one message over the bound), not how fast: its 3.2 MB
	// took over 5 s to reach C under -race on a loaded machine.
	res := callWithin(t, caller, "com.legit", nil, 20*time.Second)
	if len(res.Args) != 1 || res.Args[0] != "ok" {
		t.Fatalf("com.legit from C: %v", res.Args)
	}
	if e := a.n.Stats().PublishErrors.Load(); e != 0 {
		t.Errorf("A: %d publish errors", e)
	}
}

// A client that registers and unregisters single procedures, each under
// a new URI, must not grow the claim store (JetStream memory, shared by
// the whole mesh, 64 MiB per node) by one entry per URI for ever: once it
// is full, no node can claim a single registration any more (they are
// all accepted provisionally, exclusive no longer).
func TestReleasedClaimsLeaveNothingInTheStore(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	waitClaims(t, 20*time.Second, nodes...)
	a := nodes[0]
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	s := a.dial(a.rs(), proto.JSON)
	const n = 200
	for i := 0; i < n; i++ {
		reg, err := s.Register(ctx, fmt.Sprintf("com.churn.%d", i), h, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Unregister(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.NewWithDomain(a.n.nc, jsDomain)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, claimBucket)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.n.Stats().ClaimsProvisional.Load(); p != 0 {
		t.Fatalf("%d claims were provisional", p)
	}
	eventually(t, 10*time.Second, func() error {
		st, err := kv.Status(ctx)
		if err != nil {
			return err
		}
		if v := st.Values(); v != 0 {
			return fmt.Errorf("the claim store holds %d entries (%d bytes) after %d registrations that are all gone", v, st.Bytes(), n)
		}
		return nil
	})
}

// subscribeMany subscribes s to n exact topics prefix<i>, from a few
// goroutines, and returns the subscriptions.
func subscribeMany(t *testing.T, s *client.Session, prefix string, n int, h func(*client.Event)) []*client.Subscription {
	t.Helper()
	subs := make([]*client.Subscription, n)
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				sub, err := s.Subscribe(ctx, fmt.Sprintf("%s%d", prefix, i), h, nil)
				cancel()
				if err != nil {
					errc <- err
					return
				}
				subs[i] = sub
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return subs
}

// Every distinct subject a node subscribes to in NATS is a subscription
// in every NATS server of the mesh. One client subscribing to many
// distinct topics (65,536 per session by default) on one node made each
// other node hold about 1 KiB per topic (measured: 77 MB for 65,536 short
// URIs, 155 MB for 16,384 URIs of 4 KiB, with a 3-node mesh), with no
// bound across sessions. Past the bound of distinct subjects per realm
// (mesh.max_interest, 16,384), a node takes one subscription to the whole
// realm instead; the events still arrive, and once the subscriptions are
// down to half the bound, it subscribes to the subjects again.
func TestManySubscriptionsDoNotGrowOtherNodesInterest(t *testing.T) {
	t.Parallel()
	// A bound of 2,048 subjects rather than the default 16,384: the same
	// behaviour for an eighth of the subscriptions.
	const bound = 2048
	nodes := clusterWith(t, func(o *Options) { o.MaxInterest = bound }, "ia", "ib", "ic")
	a, b := nodes[0], nodes[1]
	base := make([]uint32, len(nodes))
	for i, tn := range nodes {
		base[i] = tn.n.srv.NumSubscriptions()
	}
	// Interest the other nodes hold beyond their baseline (JetStream's
	// own subscriptions move a little: slack).
	const slack = 256
	held := func(i int) int { return int(nodes[i].n.srv.NumSubscriptions()) - int(base[i]) }

	const k = 2 * bound // past the bound
	got := make(chan string, 16)
	sub := a.dial(a.rs(), proto.MsgPack)
	subs := subscribeMany(t, sub, "many.t", k, func(e *client.Event) {
		select {
		case got <- e.Topic:
		default:
		}
	})
	pub := b.dial(b.rs(), proto.MsgPack)
	// The events still reach the subscriber, the first topic's and the
	// last's.
	receive := func(topic string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if err := pub.Publish(ctxT(t, 5*time.Second), topic, []any{1}, nil, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case g := <-got:
				if g != topic {
					return fmt.Errorf("got an event of %s, want %s", g, topic)
				}
				return nil
			case <-time.After(200 * time.Millisecond):
				return fmt.Errorf("no event of %s", topic)
			}
		})
	}
	receive("many.t0")
	receive(fmt.Sprintf("many.t%d", k-1))
	for i := 1; i < len(nodes); i++ {
		if h := held(i); h > bound+slack {
			t.Errorf("%s holds %d NATS subscriptions for %d subscriptions of one session on %s (want at most %d)", nodes[i].name, h, k, a.name, bound+slack)
		}
	}
	if h := held(0); h > bound+slack {
		t.Errorf("%s holds %d NATS subscriptions for its %d subscriptions (want at most %d)", a.name, h, k, bound+slack)
	}
	if t.Failed() {
		return
	}
	// Down to well under half the bound: one NATS subscription per
	// subject again, and only those.
	const keep = 100
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := keep + w; i < k; i += 16 {
				if err := sub.Unsubscribe(ctxT(t, 30*time.Second), subs[i]); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	eventually(t, 10*time.Second, func() error {
		for i := range nodes {
			if h := held(i); h > keep+slack {
				return fmt.Errorf("%s holds %d NATS subscriptions for %d subscriptions (want about %d)", nodes[i].name, h, keep, keep)
			}
		}
		return nil
	})
	receive(fmt.Sprintf("many.t%d", keep-1))
	// An event of a topic left is no longer sent to a. (receive may have
	// published many.t99 more than once, when an event came later than
	// its wait: a late copy of it is not what this checks.)
	left := fmt.Sprintf("many.t%d", k-1)
	if err := pub.Publish(ctxT(t, 5*time.Second), left, []any{1}, nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case g := <-got:
			if g == left {
				t.Fatalf("got an event of %s after unsubscribing", g)
			}
			continue
		case <-deadline:
		}
		break
	}
}

// deepTopic returns "t.t.t…", levels components of "t".
func deepTopic(levels int) string {
	return strings.TrimSuffix(strings.Repeat("t.", levels), ".")
}

// One session can hold a prefix subscription at every level of a deep
// topic (prefixes are not bounded per session as wildcard patterns are,
// and 1,000 of them are well under max_interest): each is a distinct NATS
// subject, and every event to that topic matches them all. NATS handed
// such an event to the node once per matching subscription, and the
// duplicates were dropped only after they had crossed into the node's
// queues: a publisher of 200 small events a second on a made b drop other
// sessions' events (the victim on b got 154 and 264 of 600 in two runs;
// b dropped 168k-269k copies as duplicates and lost its own NATS
// connection 11-12 times). The node's event subscriptions are now queue
// subscriptions in one group of its own, so NATS hands it each event
// once: the victim gets all of its events, and b drops no copy.
//
// Not parallel: the attacker's session alone is sent 200,000 events a
// second, which would starve the tests running beside it.
func TestOverlappingPrefixesDoNotAmplifyEvents(t *testing.T) {
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	const levels = 1000
	deep := deepTopic(levels + 100)
	attacker := b.dial(b.rs(), proto.MsgPack)
	var attackGot atomic.Int64
	for l := 1; l <= levels; l++ {
		if _, err := attacker.Subscribe(ctx, deep[:2*l-1], func(*client.Event) { attackGot.Add(1) }, &client.SubscribeOptions{Match: "prefix"}); err != nil {
			t.Fatalf("prefix subscription %d: %v", l, err)
		}
	}
	victim := b.dial(b.rs(), proto.MsgPack)
	var victimGot atomic.Int64
	if _, err := victim.Subscribe(ctx, "victim.topic", func(*client.Event) { victimGot.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	vp := a.dial(a.rs(), proto.MsgPack)
	waitInterest(t, ctx, victim, vp) // b's interest has reached a
	ap := a.dial(a.rs(), proto.MsgPack)
	payload := strings.Repeat("x", 1024)
	const events = 600
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for i := 0; i < events; i++ {
			<-tk.C
			ap.Publish(ctx, deep, []any{payload}, nil, nil)
		}
	}()
	tk := time.NewTicker(5 * time.Millisecond)
	for i := 0; i < events; i++ {
		<-tk.C
		vp.Publish(ctx, "victim.topic", []any{i}, nil, nil)
	}
	tk.Stop()
	<-done
	for deadline := time.Now().Add(10 * time.Second); victimGot.Load() < events && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	st := b.n.Stats()
	t.Logf("the attacker's session got %d events (one per subscription); b: duplicates dropped %d, inbound_full %d, slow_consumer %d, NATS disconnects %d",
		attackGot.Load(), st.Duplicates.Load(), st.InboundFull.Load(), st.SlowConsumer.Load(), st.Disconnects.Load())
	if got := victimGot.Load(); got != events {
		t.Errorf("the victim on b got %d of %d events published on a at 200/s, next to 200 small events/s to a topic that one session on b holds %d overlapping prefix subscriptions of",
			got, events, levels)
	}
	if d := st.Duplicates.Load(); d != 0 {
		t.Errorf("b dropped %d copies of events as duplicates: NATS handed it an event more than once", d)
	}
	if d := st.Disconnects.Load(); d != 0 {
		t.Errorf("b lost its NATS connection %d times", d)
	}
}
