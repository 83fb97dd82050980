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

// A subject's components are what every NATS server of the mesh keeps
// for it (a level and a node of its subscription tree each, about 400
// bytes), not only its bytes: a realm's subjects are bounded in
// components too (8 each on average), past which the node takes the
// realm's every event instead. 400 exact subscriptions of one client to
// 4 KiB topics of 2,043 components ("x1.a.a.…") took both nodes' servers
// 630 MiB (20 MiB for the same bytes in 2 components) within the count
// and byte bounds.
func TestInterestBoundedInComponents(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) { o.MaxInterest = 16 }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	s := a.dial(a.rs(), proto.MsgPack)
	// Shallow subjects within the bounds keep their own interest.
	var shallow []*client.Subscription
	for i := 0; i < 16; i++ {
		sub, err := s.Subscribe(ctx, fmt.Sprintf("com.shallow%d.t", i), func(*client.Event) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		shallow = append(shallow, sub)
	}
	if w := a.n.Stats().WideRealms.Load(); w != 0 {
		t.Fatalf("16 subjects of 3 components (bound 16 subjects): WideRealms %d, want 0", w)
	}
	for _, sub := range shallow {
		if err := s.Unsubscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	// Nine subjects of 100 components, each subscribed as its first 15
	// and '>' (maxInterestDepth): 144 of the realm's 128 (16 × 8).
	var got atomic.Int64
	deep := make([]string, 9)
	var subs []*client.Subscription
	for i := range deep {
		deep[i] = fmt.Sprintf("x%d.", i) + strings.Repeat("a.", 98) + "z"
		sub, err := s.Subscribe(ctx, deep[i], func(*client.Event) { got.Add(1) }, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if w := a.n.Stats().WideRealms.Load(); w != 1 {
		t.Fatalf("9 subjects of 16 components each, 16 × 8 allowed: WideRealms %d, want 1 (the realm's every event)", w)
	}
	// Still delivered, once each.
	pub := b.dial(b.rs(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		if got.Load() == 0 {
			pub.Publish(ctx, deep[0], nil, nil, &client.PublishOptions{Acknowledge: true})
			return fmt.Errorf("no event from b")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	base := got.Load()
	for i := 0; i < 10; i++ {
		for _, d := range deep {
			if err := pub.Publish(ctx, d, nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 10*time.Second, func() error {
		if n := got.Load() - base; n != 90 {
			return fmt.Errorf("%d events of 90", n)
		}
		return nil
	})
	// Back under half of every bound: per subject again.
	for _, sub := range subs {
		if err := s.Unsubscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if w := a.n.Stats().WideRealms.Load(); w != 0 {
		t.Fatalf("after the deep subscriptions went: WideRealms %d, want 0", w)
	}
	if n := got.Load() - base; n != 90 {
		t.Fatalf("%d events of 90 (duplicates?)", n)
	}
}
