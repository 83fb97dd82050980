package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE to a pattern on one node, of events retained on
// another, delivers them oldest first, as on one node (route's
// TestRetainedPatternInPublicationOrder): they came in the order of a
// map of the gathered topics, a new one each time.
func TestMeshRetainedPatternInPublicationOrder(t *testing.T) {
	nodes := clusterWith(t, func(o *Options) { o.GatherTimeout = 10 * time.Second }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	pub := a.dial(a.ws(), proto.JSON)
	const n = 8
	for i := range n {
		if err := pub.Publish(ctx, fmt.Sprintf("com.o.t%d", (i*5)%n), []any{i}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	for try := range 5 {
		got := make(chan int64, n)
		s := b.dial(b.ws(), proto.MsgPack)
		if _, err := s.Subscribe(ctx, "com.o.", func(e *client.Event) { got <- e.Args[0].(int64) }, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			select {
			case v := <-got:
				if v != int64(i) {
					t.Fatalf("subscriber %d on node b got retained event %d as its event %d, want them in publication order", try, v, i)
				}
			case <-ctx.Done():
				t.Fatalf("subscriber %d on node b got %d of %d retained events", try, i, n)
			}
		}
		s.Close()
	}
}
