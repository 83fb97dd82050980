package edge

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node's answer to another node's get_retained holds at most what the
// NATS server takes in one message. With nats_url and NATS's default
// max_payload (1 MiB), a node whose matching retained events came to more
// than that (its answer may hold 4 MiB) had its whole answer refused by
// nats.go: the subscriber got none of that node's retained events, after
// the gather's timeout.
func TestRetainedAnswerWithinNATSMaxPayload(t *testing.T) {
	t.Parallel()
	url := jsServer(t) // max_payload: NATS's default, 1 MiB
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	b := startNode(t, "b", func(o *Options) { o.NatsURL = url; o.GatherTimeout = 3 * time.Second })
	waitMesh(t, a, b)
	ctx := ctxT(t, 20*time.Second)
	pub := a.dial(a.rs(), proto.MsgPack)
	const topics = 40
	payload := strings.Repeat("r", 40<<10) // 40 topics of 40 KiB: 1.6 MB
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.r.%d", i), []any{payload}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	var got atomic.Int64
	sub := b.dial(b.ws(), proto.MsgPack)
	if _, err := sub.Subscribe(ctx, "com.r.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	// What fits in 1 MiB: 25 of them, give or take.
	eventually(t, 4*time.Second, func() error {
		if n := got.Load(); n < 20 {
			return fmt.Errorf("%d of a's %d retained events (40 KiB each) delivered on b", n, topics)
		}
		return nil
	})
	if n := a.n.Stats().PublishErrors.Load(); n != 0 {
		t.Errorf("a's NATS refused %d messages", n)
	}
}
