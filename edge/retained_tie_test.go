package edge

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Two retained events of one topic published on two nodes at once can
// carry the same time: each node stamps its event just after the topic's
// newest it holds (retainStamp), and with both clocks at one tick (coarse
// clocks, or one behind the other's last event) both are that event's
// time + 1 ns. Each node then took the other's copy as no older than its
// own and kept it, and answered get_retained with it: a's subscribers got
// b's event and b's a's, for as long as neither topic changed. Ties go
// to the higher publication id, on every node.
func TestRetainedTieSameOnEveryNode(t *testing.T) {
	t.Parallel()
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	t0 := time.Unix(1_900_000_000, 0) // both clocks at one tick
	clock := func(c *route.Config) { c.Now = func() time.Time { return t0 } }
	a := startNodeConf(t, "a", clock, func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes = pa, []string{"nats://" + pb}
		o.GatherTimeout = 10 * time.Second
	})
	b := startNodeConf(t, "b", clock, func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes = pb, []string{"nats://" + pa}
		o.GatherTimeout = 10 * time.Second
	})
	waitMesh(t, a, b)
	ctx := ctxT(t, 30*time.Second)
	type rx struct {
		mu sync.Mutex
		vs []any
	}
	last := func(r *rx) any {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.vs) == 0 {
			return nil
		}
		return r.vs[len(r.vs)-1]
	}
	watch := func(n *tnode) *rx {
		r := &rx{}
		s := n.dial(n.rs(), proto.JSON)
		if _, err := s.Subscribe(ctx, "com.tie", func(e *client.Event) {
			r.mu.Lock()
			r.vs = append(r.vs, e.Args[0])
			r.mu.Unlock()
		}, nil); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := watch(a), watch(b) // each node keeps the other's copies
	pubA, pubB := a.dial(a.ws(), proto.JSON), b.dial(b.ws(), proto.JSON)
	publish := func(p *client.Session, v string) {
		t.Helper()
		if err := p.Publish(ctx, "com.tie", []any{v}, nil, &client.PublishOptions{Retain: true, Acknowledge: true, ExcludeMe: new(bool)}); err != nil {
			t.Fatal(err)
		}
	}
	// Each node's interest reaches the other (a probe, not retained),
	// then y1, once: both nodes hold it at t0.
	eventually(t, 10*time.Second, func() error {
		for _, p := range []*client.Session{pubA, pubB} {
			if err := p.Publish(ctx, "com.tie", []any{"probe"}, nil, &client.PublishOptions{Acknowledge: true, ExcludeMe: new(bool)}); err != nil {
				t.Fatal(err)
			}
		}
		ra.mu.Lock()
		na := len(ra.vs)
		ra.mu.Unlock()
		rb.mu.Lock()
		nb := len(rb.vs)
		rb.mu.Unlock()
		if na < 2 || nb < 2 {
			return fmt.Errorf("probes: a %d, b %d", na, nb)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	publish(pubB, "y1")
	eventually(t, 10*time.Second, func() error {
		if last(ra) != "y1" || last(rb) != "y1" {
			return fmt.Errorf("y1 not on both nodes yet: a %v, b %v", last(ra), last(rb))
		}
		return nil
	})
	base := func(r *rx) int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.vs) }
	ba, bb := base(ra), base(rb)
	// Both publish before either hears of the other's: their senders
	// wait.
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	hold := func(*outBatch) { <-gate }
	a.n.testHookSend.Store(&hold)
	b.n.testHookSend.Store(&hold)
	publish(pubA, "x")
	publish(pubB, "y2")
	open()
	eventually(t, 10*time.Second, func() error {
		ra.mu.Lock()
		na := len(ra.vs)
		ra.mu.Unlock()
		rb.mu.Lock()
		nb := len(rb.vs)
		rb.mu.Unlock()
		if na < ba+2 || nb < bb+2 {
			return fmt.Errorf("a got %d, b %d events", na, nb)
		}
		return nil
	})
	retained := func(n *tnode) any {
		got := make(chan *client.Event, 4)
		s := n.dial(n.rs(), proto.MsgPack)
		if _, err := s.Subscribe(ctx, "com.tie", func(e *client.Event) { got <- e }, &client.SubscribeOptions{GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-got:
			return e.Args[0]
		case <-time.After(10 * time.Second):
			t.Fatalf("no retained event on %s", n.name)
		}
		return nil
	}
	va, vb := retained(a), retained(b)
	if va != vb {
		t.Fatalf("get_retained: %v on a, %v on b (x and y2, published at once, have the same time)", va, vb)
	}
}
