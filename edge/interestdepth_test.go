package edge

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A subscription deeper than maxInterestDepth components is NATS
// interest in its first 15 and '>' (every NATS server of the mesh keeps,
// and allocates and frees at each SUB and UNSUB, a level per token: a
// client subscribing and unsubscribing a 2,043-component topic in a loop
// cost each server ~2 ms of CPU per round), and the node filters what
// comes: deep exact, prefix and wildcard subscriptions still get their
// events once each, and not those of other topics under the same 15.
func TestDeepSubscriptionInterestIsShallow(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	long := func(head string, n int) string { return head + strings.Repeat(".a", n-2) + ".z" }
	exact := long("x", 2043)                                        // 2,043 components
	prefix := long("y", 40)[:len(long("y", 40))-1]                  // "y.a….a." : 40 components, the last empty
	wild := "w" + strings.Repeat(".", 5) + strings.Repeat(".a", 30) // 36 components, 5 empty
	var mu sync.Mutex
	got := map[string][]string{}
	s := a.dial(a.rs(), proto.MsgPack)
	for _, c := range []struct{ uri, match string }{{exact, ""}, {prefix, "prefix"}, {wild, "wildcard"}} {
		c := c
		if _, err := s.Subscribe(ctx, c.uri, func(e *client.Event) {
			mu.Lock()
			got[c.match] = append(got[c.match], fmt.Sprint(e.Args...))
			mu.Unlock()
		}, &client.SubscribeOptions{Match: c.match}); err != nil {
			t.Fatal(err)
		}
	}
	a.n.imu.Lock()
	for subj := range a.n.interests["realm1"].subs {
		if k := subjectComponents(subj); k > 16 { // maxInterestDepth
			t.Errorf("interest subject of %d components (%.40q…), want at most 16", k, subj)
		}
	}
	a.n.imu.Unlock()
	pub := b.dial(b.rs(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		n := len(got[""])
		mu.Unlock()
		if n == 0 {
			pub.Publish(ctx, exact, []any{"probe"}, nil, &client.PublishOptions{Acknowledge: true})
			return fmt.Errorf("no event from b")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	got = map[string][]string{}
	mu.Unlock()
	wildHit := "w.1.2.3.4.5" + strings.Repeat(".a", 30)
	topics := []string{
		exact,           // exact
		long("x", 2042), // the exact's first 15 components, not it
		prefix + "q",    // prefix
		strings.TrimSuffix(prefix, ".a.") + ".b.q", // the prefix's first 15, not it
		wildHit,        // wildcard
		wildHit + ".a", // one component more: not it
	}
	for i, topic := range topics {
		if err := pub.Publish(ctx, topic, []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{"": {"0"}, "prefix": {"2"}, "wildcard": {"4"}}
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got[""])+len(got["prefix"])+len(got["wildcard"]) < 3 {
			return fmt.Errorf("got %v", got)
		}
		return nil
	})
	// A fence: events from b reach a in order.
	if err := pub.Publish(ctx, exact, []any{"fence"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if l := got[""]; len(l) == 0 || l[len(l)-1] != "fence" {
			return fmt.Errorf("no fence yet: %v", got)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	got[""] = got[""][:len(got[""])-1]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v (once each, none of the other topics)", got, want)
	}
}
