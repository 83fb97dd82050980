package edge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A retained event replaces the topic's retained event its node holds,
// whatever the node's clock says: get_retained, anywhere in the mesh,
// then delivers the replacement. The nodes pick the newest of their
// copies by publication time, and a node whose clock is behind the time
// of the event it replaces (another node's clock ahead, or its own
// stepped back) stamped the replacement older than the event it
// replaced: every get_retained, on its own node too, delivered the
// replaced event for as long as its publisher's node was up.
func TestRetainedReplacementNewerWhateverTheClock(t *testing.T) {
	t.Parallel()
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	var skew atomic.Int64 // b's clock is an hour ahead; a's steps back later
	a := startNodeConf(t, "a", func(c *route.Config) {
		c.Now = func() time.Time { return time.Now().Add(-time.Duration(skew.Load())) }
	}, func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes = pa, []string{"nats://" + pb}
		o.GatherTimeout = 10 * time.Second // every node answers: a gather ends with the last answer
	})
	b := startNodeConf(t, "b", func(c *route.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Hour) }
	}, func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes = pb, []string{"nats://" + pa}
		o.GatherTimeout = 10 * time.Second
	})
	waitMesh(t, a, b)
	ctx := ctxT(t, 30*time.Second)

	// A subscriber on a, so that a keeps a copy of b's retained event.
	live := make(chan *client.Event, 64)
	sa := a.dial(a.ws(), proto.JSON)
	if _, err := sa.Subscribe(ctx, "com.state", func(e *client.Event) { live <- e }, nil); err != nil {
		t.Fatal(err)
	}
	pubB := b.dial(b.rs(), proto.MsgPack)
	waitEvent(t, pubB, "com.state", live)
	publish := func(p *client.Session, topic, v string) {
		t.Helper()
		if err := p.Publish(ctx, topic, []any{v}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	// v1 on b, received (and kept) on a; then v2 on a, which replaces it
	// there.
	publish(pubB, "com.state", "v1")
	for e := range live {
		if len(e.Args) == 1 && e.Args[0] == "v1" {
			break
		}
	}
	pubA := a.dial(a.rs(), proto.CBOR)
	publish(pubA, "com.state", "v2")
	retained := func(n *tnode, topic string) any {
		t.Helper()
		got := make(chan *client.Event, 4)
		s := n.dial(n.ws(), proto.JSON)
		defer s.Close()
		if _, err := s.Subscribe(ctx, topic, func(e *client.Event) { got <- e }, &client.SubscribeOptions{GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-got:
			if !e.Retained || len(e.Args) != 1 {
				t.Fatalf("on %s: %v retained %v", n.name, e.Args, e.Retained)
			}
			return e.Args[0]
		case <-time.After(15 * time.Second):
			t.Fatalf("on %s: no retained event", n.name)
		}
		return nil
	}
	for _, n := range []*tnode{a, b} {
		if v := retained(n, "com.state"); v != "v2" {
			t.Errorf("clock behind another node's: get_retained on %s delivered %v, want v2, which replaced it on a", n.name, v)
		}
	}

	// a's clock steps back two hours between two retained events of its
	// own on another topic, of which b has a subscriber, and so a copy of
	// each.
	sb := b.dial(b.ws(), proto.JSON)
	liveB := make(chan *client.Event, 64)
	if _, err := sb.Subscribe(ctx, "com.other", func(e *client.Event) { liveB <- e }, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pubA, "com.other", liveB)
	publish(pubA, "com.other", "v3")
	skew.Store(int64(2 * time.Hour))
	publish(pubA, "com.other", "v4")
	for e := range liveB {
		if len(e.Args) == 1 && e.Args[0] == "v4" {
			break
		}
	}
	for _, n := range []*tnode{a, b} {
		if v := retained(n, "com.other"); v != "v4" {
			t.Errorf("clock stepped back: get_retained on %s delivered %v, want v4, which replaced v3 on a", n.name, v)
		}
	}
}
