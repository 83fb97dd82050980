package edge

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// An edge client's prefix get_retained whose answer from the hub is larger
// than the edge's slow uplink carries in a couple of seconds is delivered
// whole, and the link stays up: the hub sends its answer a part at a time,
// each once the part before is in (pacedOut), so that the heartbeats and
// NATS's PONGs behind it wait for one part at most. Sent as one message,
// it held them behind itself for the whole answer: the edge took the hub
// for dead, NATS cut the leaf link as stale, and none of the retained
// events was delivered.
func TestSlowUplinkGetRetainedDelivered(t *testing.T) {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Leaf.Advertise = link.addr()
		o.GatherTimeout = 2 * time.Second
	})
	ctx := ctxT(t, 60*time.Second)
	// 2,000 retained events of 1 KiB (random: NATS compresses a leaf
	// link's traffic): about 2 MiB, 11 s over the link.
	const topics = 2000
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.ret.%d", i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	edge := startNode(t, "edge1", func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + link.addr()}
		o.GatherTimeout = 2 * time.Second
	})
	waitMesh(t, hub, edge)
	// The hub learns from the edge's heartbeats that it reads answers
	// sent a part at a time: a couple of them after the join.
	time.Sleep(4 * defaultHeartbeat)
	sub := edge.dial(edge.ws(), proto.MsgPack)
	var got atomic.Int64
	start := time.Now()
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	all := within(30*time.Second, func() error {
		if k := got.Load(); k < topics {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	lostE, lostH := edge.n.Stats().PeersLost.Load(), hub.n.Stats().PeersLost.Load()
	t.Logf("%d bytes crossed; %d of %d retained events delivered after %v; peers lost: edge %d, hub %d; gathers incomplete %d", link.bytes.Load(), got.Load(), topics, time.Since(start).Round(time.Millisecond), lostE, lostH, edge.n.Stats().GathersIncomplete.Load())
	if !all || lostE != 0 || lostH != 0 {
		t.Fatalf("the hub's get_retained answer did not cross the slow uplink whole (%d of %d delivered; the edge took the hub for dead %d times, the hub the edge %d)", got.Load(), topics, lostE, lostH)
	}
}

// A node holds the answers it sends a part at a time within its bounds: a
// quarter of max_outbound in all, a quarter of that for one asking node
// (past them the asker is sent a refusal); one part in flight per asking
// node, its other answers announced; an answer whose part is not
// acknowledged for pacedWait, or of an asker taken for dead, is dropped.
func TestPacedAnswersHeldBounded(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", MaxOutbound: 4 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	all, per := n.maxPacedHeld(), n.maxPacedHeld()/4 // 3 MiB, 768 KiB
	ans := make([]byte, 100<<10)
	answer := func(asker string, id int) {
		inbox := nodeInbox(asker)
		n.answerQuery(asker, inbox, true, fmt.Sprintf("%s.a.%d.1.500.1", inbox, id), ans)
	}
	for i := 0; i < 8; i++ { // the eighth passes the asker's quarter
		answer("a", i)
	}
	if got := n.paced["a"]; got == nil || len(got.q) != 7 || len(got.flight) != 1 || got.flight[0].end != pacedPart {
		t.Fatalf("asker a: %+v", got)
	}
	if r := n.stats.PacedRefused.Load(); r != 1 {
		t.Fatalf("%d answers refused for one asker past %d bytes, want 1", r, per)
	}
	for k := 0; k < 20; k++ {
		for i := 0; i < 2; i++ {
			answer(fmt.Sprintf("b%d", k), i)
		}
	}
	if n.pacedBytes > all || n.pacedBytes < all-int64(len(ans)) {
		t.Fatalf("%d bytes held, bound %d", n.pacedBytes, all)
	}
	// A small answer is sent at once, not held; so is any answer to a
	// node whose heartbeats do not say it reads parts (the previous
	// release).
	n.answerQuery("g", nodeInbox("g"), true, nodeInbox("g")+".a.1.1.500.1", ans[:pacedAlone])
	n.answerQuery("o", nodeInbox("o"), false, nodeInbox("o")+".a.1.1.500.1", ans)
	if n.paced["g"] != nil || n.paced["o"] != nil {
		t.Fatal("a small answer, or one to the previous release, was held")
	}
	if !readsPacedAnswers(binary.AppendUvarint(binary.AppendUvarint(nil, 12345), hbPacedAnswers)) || readsPacedAnswers(binary.AppendUvarint(nil, 12345)) {
		t.Fatal("the heartbeat's flag after its clock is misread")
	}
	// The askers are no peers of n: taken for dead, their answers go.
	n.sweepPaced(time.Now())
	if n.pacedBytes != 0 || len(n.paced) != 0 {
		t.Fatalf("after the sweep: %d bytes held for %d askers", n.pacedBytes, len(n.paced))
	}
	// A live asker that stops acknowledging: its part's answer goes after
	// pacedWait, then the next answer's part goes.
	n.peers.byName["a"] = &peer{name: "a"}
	answer("a", 10)
	answer("a", 11)
	n.sweepPaced(time.Now())
	if pt := n.paced["a"]; pt == nil || len(pt.q) != 2 {
		t.Fatal("a live asker's answers dropped before pacedWait")
	}
	dropped := n.stats.PacedDropped.Load()
	n.sweepPaced(time.Now().Add(n.pacedWait() + time.Second))
	if pt := n.paced["a"]; pt == nil || len(pt.q) != 1 || len(pt.flight) != 1 || pt.flight[0].h != pt.q[0] || n.stats.PacedDropped.Load() != dropped+1 {
		t.Fatalf("after pacedWait without an acknowledgement: %+v", n.paced["a"])
	}
	n.sweepPaced(time.Now().Add(maxPacedWait + time.Second))
	if n.pacedBytes != 0 || len(n.paced) != 0 {
		t.Fatalf("after maxPacedWait: %d bytes held", n.pacedBytes)
	}
}

// Several get_retained SUBSCRIBEs of an edge at once, each answered with
// more than a part, share the slow uplink: their answers take turns, one
// part in flight, and each is delivered whole, the link kept.
func TestSlowUplinkConcurrentGetRetainedDelivered(t *testing.T) {
	// A stall of this process as long as gather_timeout (500 ms) as the
	// gathers start ends them before their answers' notices are read.
	triedUnstalled(t, defaultGatherTimeout, func() error { return slowUplinkConcurrentGetRetained(t) })
}

func slowUplinkConcurrentGetRetained(t *testing.T) error {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Leaf.Advertise = link.addr()
	})
	ctx := ctxT(t, 60*time.Second)
	// Four prefixes of 300 retained events of 1 KiB: 1.2 MiB, 7 s over
	// the link.
	const prefixes, topics = 4, 300
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for p := 0; p < prefixes; p++ {
		for i := 0; i < topics; i++ {
			if err := pub.Publish(ctx, fmt.Sprintf("com.p%d.%d", p, i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + link.addr()} })
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the edge's heartbeats say it reads parts
	var got [prefixes]atomic.Int64
	start := time.Now()
	for p := 0; p < prefixes; p++ {
		sub := edge.dial(edge.ws(), proto.MsgPack)
		if _, err := sub.Subscribe(ctx, fmt.Sprintf("com.p%d.", p), func(e *client.Event) {
			if e.Retained {
				got[p].Add(1)
			}
		}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
			t.Fatal(err)
		}
	}
	all := within(30*time.Second, func() error {
		for p := range got {
			if k := got[p].Load(); k < topics {
				return fmt.Errorf("prefix %d: %d of %d", p, k, topics)
			}
		}
		return nil
	})
	counts := make([]int64, prefixes)
	for p := range got {
		counts[p] = got[p].Load()
	}
	lostE, lostH := edge.n.Stats().PeersLost.Load(), hub.n.Stats().PeersLost.Load()
	t.Logf("%d bytes crossed; delivered %v of %d each after %v; peers lost: edge %d, hub %d; gathers incomplete %d", link.bytes.Load(), counts, topics, time.Since(start).Round(time.Millisecond), lostE, lostH, edge.n.Stats().GathersIncomplete.Load())
	if !all || lostE != 0 || lostH != 0 {
		return fmt.Errorf("the hub's get_retained answers did not cross the slow uplink whole (%v of %d each; peers lost: edge %d, hub %d)", counts, topics, lostE, lostH)
	}
	return nil
}

// Many get_retained SUBSCRIBEs of an edge at once, each answered with less
// than a part, do not make one burst on the slow uplink either: answers
// to a node that reads parts wait their turn behind the part in flight.
func TestSlowUplinkManySmallGetRetainedDelivered(t *testing.T) {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Leaf.Advertise = link.addr()
	})
	ctx := ctxT(t, 60*time.Second)
	// 24 prefixes of 56 retained events of 1 KiB, each answer under a
	// part: 1.3 MiB, 7 s over the link.
	const prefixes, topics = 24, 56
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for p := 0; p < prefixes; p++ {
		for i := 0; i < topics; i++ {
			if err := pub.Publish(ctx, fmt.Sprintf("com.p%d.%d", p, i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	edge := startNode(t, "edge1", func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + link.addr()}
		o.GatherTimeout = 2 * time.Second
	})
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the edge's heartbeats say it reads parts
	var got [prefixes]atomic.Int64
	subs := make([]*client.Session, 4)
	for i := range subs {
		subs[i] = edge.dial(edge.ws(), proto.MsgPack)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < prefixes; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := subs[p%len(subs)].Subscribe(ctx, fmt.Sprintf("com.p%d.", p), func(e *client.Event) {
				if e.Retained {
					got[p].Add(1)
				}
			}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	all := within(30*time.Second, func() error {
		for p := range got {
			if k := got[p].Load(); k < topics {
				return fmt.Errorf("prefix %d: %d of %d", p, k, topics)
			}
		}
		return nil
	})
	var delivered int64
	for p := range got {
		delivered += got[p].Load()
	}
	lostE, lostH := edge.n.Stats().PeersLost.Load(), hub.n.Stats().PeersLost.Load()
	t.Logf("%d bytes crossed; %d of %d delivered after %v; peers lost: edge %d, hub %d; gathers incomplete %d", link.bytes.Load(), delivered, prefixes*topics, time.Since(start).Round(time.Millisecond), lostE, lostH, edge.n.Stats().GathersIncomplete.Load())
	if !all || lostE != 0 || lostH != 0 {
		t.Fatalf("the hub's get_retained answers did not cross the slow uplink whole (%d of %d; peers lost: edge %d, hub %d)", delivered, prefixes*topics, lostE, lostH)
	}
}

// The answers a node holds for paced sending are bounded by what its
// outbound queue would have taken of them at once (three quarters of
// max_outbound), not a quarter of it: an answer between the two was
// refused, where before pacing it was sent whole. One answer larger than
// an asking node's share is held when that node has none held.
func TestPacedAnswerPastAskerShareHeldAlone(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", MaxOutbound: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ans := make([]byte, 300<<10) // within what the outbound queue takes at once (three quarters of 1 MiB)
	inbox := nodeInbox("a")
	n.answerQuery("a", inbox, true, inbox+".a.1.1.500.1", ans)
	if pt := n.paced["a"]; pt == nil || len(pt.q) != 1 || n.stats.PacedRefused.Load() != 0 {
		t.Fatalf("an answer of %d bytes to an asker holding none was refused (node bound %d, the asker's share %d)", len(ans), n.maxPacedHeld(), n.maxPacedHeld()/4)
	}
	n.answerQuery("a", inbox, true, inbox+".a.2.1.500.1", ans)
	if r := n.stats.PacedRefused.Load(); r != 1 {
		t.Fatalf("a second answer past the asker's share: %d refused, want 1", r)
	}
}

// An asking node that restarted (a new boot in its reply subjects) has
// its previous life's answers dropped at its first answer: they are
// nobody's, and the part in flight to the old life is never acknowledged.
// Kept, the new life's answers waited behind them, pacedWait for the part
// in flight, then each old answer's next part in turn, which the new life
// neither read nor acknowledged.
func TestPacedAnswersOfAnAskersPreviousLifeDropped(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ans := make([]byte, 200<<10)
	inbox := nodeInbox("a")
	for i := 1; i <= 3; i++ {
		n.answerQuery("a", inbox, true, fmt.Sprintf("%s.a.%d.1.500.b1", inbox, i), ans)
	}
	n.answerQuery("a", inbox, true, inbox+".a.1.1.500.b2", ans) // the new life's first
	pt := n.paced["a"]
	if pt == nil || len(pt.q) != 1 || len(pt.flight) != 1 || pt.flight[0].h != pt.q[0] || pt.q[0].tail != "1.1.500.b2" || n.pacedBytes != int64(len(ans)) {
		t.Fatalf("the new life's answer waits behind %d held answers (%d bytes held)", len(pt.q)-1, n.pacedBytes)
	}
	if d := n.stats.PacedDropped.Load(); d != 3 {
		t.Fatalf("%d of the previous life's answers counted dropped, want 3", d)
	}
}
