package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

func TestClusterSmoke(t *testing.T) {
	nodes := cluster(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	callee := b.dial(b.rs(), proto.CBOR)
	if _, err := callee.Register(ctxT(t, 5*time.Second), "com.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{inv.Args[0].(int64) + inv.Args[1].(int64)}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	res := callUntil(t, caller, "com.add", []any{2, 3})
	if res.Args[0] != int64(5) {
		t.Fatalf("result %v", res.Args)
	}
	got := make(chan *client.Event, 10)
	sub := c.dial(c.ws(), proto.MsgPack)
	if _, err := sub.Subscribe(ctxT(t, 5*time.Second), "com.t", func(e *client.Event) { got <- e }, nil); err != nil {
		t.Fatal(err)
	}
	defer dumpStats(t, nodes...)
	eventually(t, 5*time.Second, func() error {
		caller.Publish(ctxT(t, time.Second), "com.t", []any{"x"}, nil, nil)
		select {
		case <-got:
			return nil
		case <-time.After(50 * time.Millisecond):
			return context.DeadlineExceeded
		}
	})
}

func dumpStats(t *testing.T, nodes ...*tnode) {
	for _, n := range nodes {
		s := n.n.Stats()
		ms := n.r.MeshStats()
		t.Logf("%s: drop=%d slow=%d dup=%d puberr=%d unknown=%d | sendfail=%d bad=%d interests=%v", n.name, s.EventsDropped.Load(), s.SlowConsumer.Load(), s.Duplicates.Load(), s.PublishErrors.Load(), s.Unknown.Load(), ms.SendFailed.Load(), ms.BadEnvelopes.Load(), n.n.interests)
	}
}
