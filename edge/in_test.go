package edge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestInboundBytesBounded: node a's event dispatcher stalls (as behind a
// loop that does not keep up) while b publishes large events to a's
// subscriber. The bytes waiting for a's dispatcher stay within the
// events' share of MaxInbound (three quarters; the rest is for calls),
// the events past it are dropped and counted (InboundFull,
// not NATS's slow-consumer drops), a's heartbeats and peers are
// unaffected through a stall longer than the peer timeout, and every
// event that was queued is delivered once the dispatcher runs again.
// Before the bound, the events queued without a byte limit (16,384
// messages of up to 24 MiB).
func TestInboundBytesBounded(t *testing.T) {
	t.Parallel()
	const (
		maxInbound = 2 << 20
		size       = 64 << 10
		events     = 100 // 6.4 MiB
	)
	nodes := clusterWith(t, func(o *Options) {
		o.PeerTimeout = 1500 * time.Millisecond
		if o.Name == "a" {
			o.MaxInbound = maxInbound
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	var got atomic.Int64
	sa := a.dial(a.ws(), proto.MsgPack)
	if _, err := sa.Subscribe(ctx, "com.big", func(e *client.Event) {
		if s, ok := e.Args[1].(string); ok && len(s) == size {
			got.Add(1)
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	sb := b.dial(b.rs(), proto.MsgPack)
	ack := &client.PublishOptions{Acknowledge: true}
	waitInterest(t, ctx, sa, sb)
	// Stall a's dispatcher.
	gate := make(chan struct{})
	stall := func() { <-gate }
	a.n.testHookEvents.Store(&stall)
	_, _, before := a.n.in.queued()
	big := strings.Repeat("x", size)
	stalledAt := time.Now()
	for i := range events {
		if err := sb.Publish(ctx, "com.big", []any{i, big}, nil, ack); err != nil {
			t.Fatal(err)
		}
	}
	// Every event reaches a: queued or dropped.
	eventually(t, 20*time.Second, func() error {
		_, _, taken := a.n.in.queued()
		if n := taken - before + a.n.Stats().InboundFull.Load(); n < events {
			return fmt.Errorf("%d of %d events in", n, events)
		}
		return nil
	})
	bytes, peak, taken := a.n.in.queued()
	queued := int64(taken - before)
	dropped := a.n.Stats().InboundFull.Load()
	t.Logf("stalled: %d events queued (%d bytes, peak %d, bound %d), %d dropped", queued, bytes, peak, maxInbound, dropped)
	if peak > maxInbound*3/4 {
		t.Errorf("%d bytes waited for the dispatcher, past the events' bound %d", peak, maxInbound*3/4)
	}
	if dropped == 0 || queued == 0 {
		t.Errorf("%d events queued, %d dropped: want both", queued, dropped)
	}
	if sc := a.n.Stats().SlowConsumer.Load(); sc != 0 {
		t.Errorf("NATS dropped %d messages for a slow consumer", sc)
	}
	// The heartbeats go on: b stays a peer through a stall past the
	// peer timeout.
	time.Sleep(time.Until(stalledAt.Add(2 * time.Second)))
	if p := a.n.Peers(); !slices.Equal(p, []string{"b"}) {
		t.Errorf("a's peers during the stall: %v", p)
	}
	if p := b.n.Peers(); !slices.Equal(p, []string{"a"}) {
		t.Errorf("b's peers during the stall: %v", p)
	}
	// Once the dispatcher runs again, what was queued is delivered.
	a.n.testHookEvents.Store(nil)
	close(gate)
	eventually(t, 20*time.Second, func() error {
		if n := got.Load(); n != queued {
			return fmt.Errorf("%d of the %d events queued delivered", n, queued)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	if n := got.Load(); n != queued {
		t.Fatalf("%d events delivered, %d queued", n, queued)
	}
	if bytes, _, _ := a.n.in.queued(); bytes != 0 {
		t.Errorf("%d bytes still counted with nothing queued", bytes)
	}
}

// TestDispatcherStopsMidBatch: a node that shuts down while its event
// dispatcher holds a large batch stops within a few dozen messages of
// it, rather than delivering the whole batch first (a batch is all that
// was queued, up to MaxInbound: seconds of work under a flood, which
// Shutdown waited for). Before the check, all the events arrived.
func TestDispatcherStopsMidBatch(t *testing.T) {
	t.Parallel()
	const events = 2000
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	var got atomic.Int64
	sa := a.dial(a.ws(), proto.MsgPack)
	if _, err := sa.Subscribe(ctx, "com.flood", func(*client.Event) { got.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	sb := b.dial(b.rs(), proto.MsgPack)
	ack := &client.PublishOptions{Acknowledge: true}
	waitInterest(t, ctx, sa, sb)
	gate := make(chan struct{})
	stall := func() { <-gate }
	a.n.testHookEvents.Store(&stall)
	_, _, before := a.n.in.queued()
	for i := range events {
		if err := sb.Publish(ctx, "com.flood", []any{i}, nil, ack); err != nil {
			t.Fatal(err)
		}
	}
	// b packs events into frames, so the messages queued at a are fewer
	// than the events: wait until their count holds still.
	last := before
	eventually(t, 20*time.Second, func() error {
		time.Sleep(300 * time.Millisecond)
		_, _, taken := a.n.in.queued()
		if taken == before || taken != last {
			last = taken
			return fmt.Errorf("%d messages queued, still coming", taken-before)
		}
		return nil
	})
	if d := a.n.Stats().InboundFull.Load(); d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	done := make(chan error, 1)
	go func() { done <- a.n.Shutdown(ctx) }()
	eventually(t, 10*time.Second, func() error {
		if !a.n.stopped.Load() {
			return fmt.Errorf("not stopping yet")
		}
		return nil
	})
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// What the dispatcher handled has reached the subscriber once an
	// event published on a itself, after them, has.
	var after atomic.Bool
	if _, err := sa.Subscribe(ctx, "com.after", func(*client.Event) { after.Store(true) }, nil); err != nil {
		t.Fatal(err)
	}
	sa2 := a.dial(a.rs(), proto.JSON)
	if err := sa2.Publish(ctx, "com.after", nil, nil, ack); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if !after.Load() {
			return fmt.Errorf("no local event yet")
		}
		return nil
	})
	n := got.Load()
	t.Logf("%d of the %d events (%d messages) delivered after Shutdown began", n, events, last-before)
	if n >= events/2 {
		t.Errorf("%d of the %d events delivered after Shutdown began: the dispatcher went on with its batch", n, events)
	}
	if bytes, _, _ := a.n.in.queued(); bytes != 0 {
		t.Errorf("%d bytes still counted after the dispatcher stopped", bytes)
	}
}

// waitInterest returns once sa's subscriptions (on one node) have reached
// sb's node: a probe subscription of sa's gets an event sb publishes; the
// last probes in flight arrive before it returns.
func waitInterest(t *testing.T, ctx context.Context, sa, sb *client.Session) {
	t.Helper()
	var probes atomic.Int64
	if _, err := sa.Subscribe(ctx, "com.probe", func(*client.Event) { probes.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if err := sb.Publish(ctx, "com.probe", nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
		if probes.Load() == 0 {
			return fmt.Errorf("no probe received")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
}
