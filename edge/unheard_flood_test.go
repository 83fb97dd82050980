package edge

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A client publishing large events to a topic no node subscribes to used
// to fill the events' three quarters of its node's outbound queue, and
// another publisher's events, to a topic a session on another node
// subscribes to, were dropped (outbound_full), where on one node such
// publications cost nothing. An event no other node has interest in is
// not queued now.
func TestUnheardFloodLeavesOthersEvents(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) { o.MaxOutbound = 1 << 20 }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 20*time.Second)
	flooder := a.dial(a.ws(), proto.JSON)
	other := a.dial(a.rs(), proto.CBOR)
	sub := b.dial(b.rs(), proto.CBOR)
	got := make(chan *client.Event, 64)
	if _, err := sub.Subscribe(ctx, "com.example.watched", func(e *client.Event) { got <- e }, nil); err != nil {
		t.Fatal(err)
	}
	// B's interest has reached A once an event gets through.
	ack := &client.PublishOptions{Acknowledge: true}
	eventually(t, 5*time.Second, func() error {
		if err := other.Publish(ctx, "com.example.watched", []any{"probe"}, nil, ack); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("B's subscriber got no event from A yet")
		}
	})
	for len(got) > 0 {
		<-got
	}
	// The sender is held (a slow uplink): what A queues waits.
	_, release := holdSender(t, a.n)
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < 32; i++ { // 2 MiB, twice the queue's bound
		if err := flooder.Publish(ctx, "com.example.nobody", []any{big}, nil, ack); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 1000; i++ { // and small ones, into what room is left
		if err := flooder.Publish(ctx, "com.example.nobody", []any{i}, nil, ack); err != nil {
			t.Fatal(err)
		}
	}
	dropped := a.n.stats.EventsDropped.Load()
	if err := other.Publish(ctx, "com.example.watched", []any{"real"}, nil, ack); err != nil {
		t.Fatal(err)
	}
	if a.n.stats.EventsUnheard.Load() == 0 {
		t.Error("no event counted in EventsUnheard")
	}
	release()
	select {
	case e := <-got:
		if e.Args[0] != "real" {
			t.Fatalf("B's subscriber got %v, want the other publisher's event", e.Args)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the other publisher's event was lost behind 2 MiB of events nobody subscribes to (A dropped %d events, %d during the flood)",
			a.n.stats.EventsDropped.Load(), dropped)
	}
}
