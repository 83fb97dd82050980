package edge

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// holdSender holds n's sender before it hands its next batch to NATS,
// until release (called at cleanup too): what the node queues meanwhile
// (PUBLISHED is already answered for it) waits, in order. queued reports
// whether a message to a subject starting with prefix is waiting.
func holdSender(t *testing.T, n *Node) (queued func(prefix string) bool, release func()) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var held *outBatch
	h := func(b *outBatch) {
		mu.Lock()
		held = b
		mu.Unlock()
		<-gate
	}
	n.testHookSend.Store(&h)
	var once sync.Once
	release = func() {
		once.Do(func() {
			n.testHookSend.Store(nil)
			close(gate)
		})
	}
	t.Cleanup(release)
	queued = func(prefix string) bool {
		mu.Lock()
		b := held
		mu.Unlock()
		q := n.out
		q.mu.Lock()
		defer q.mu.Unlock()
		for _, bb := range []*outBatch{b, q.cur} {
			if bb == nil {
				continue
			}
			for _, it := range bb.items {
				if strings.HasPrefix(it.subj, prefix) {
					return true
				}
			}
		}
		return false
	}
	return queued, release
}

// A subscriber on B subscribes with get_retained just after A answered
// PUBLISHED to v1 and v2 (both retained), while they still wait in A's
// outbound queue: B's interest reaches A first, so NATS brings B both
// live copies and, behind them, A's answer to B's gather with the
// retained v2. B's event and control dispatchers then race: the
// subscriber got v2 twice (retained and live), and v1 after the retained
// v2 or v2 live before it. It must get the retained v2 once, and the events
// published after it live.
func TestClusterRetainedNotTwice(t *testing.T) {
	t.Parallel()
	// A's answer waits behind its held sender: a loaded machine must not
	// make B's gather give up on it.
	nodes := clusterWith(t, func(o *Options) { o.GatherTimeout = 10 * time.Second }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 20*time.Second)
	pub := a.dial(a.ws(), proto.JSON)
	sub := b.dial(b.rs(), proto.CBOR)
	queued, release := holdSender(t, a.n)
	for _, v := range []string{"v1", "v2"} {
		if err := pub.Publish(ctx, "com.state", []any{v}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan *client.Event, 16)
	if _, err := sub.Subscribe(ctx, "com.state", func(e *client.Event) { got <- e }, &client.SubscribeOptions{GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	// B's interest travels ahead of its gather on the same route: once A
	// has queued its answer, NATS will route v1 and v2 to B.
	eventually(t, 5*time.Second, func() error {
		if !queued(nodeInbox("b") + ".a.") {
			return errors.New("A has not answered B's get_retained yet")
		}
		return nil
	})
	release()
	// v3 leaves A after v1, v2 and the answer, and reaches the subscriber
	// after whatever B delivers of v1 and v2.
	if err := pub.Publish(ctx, "com.state", []any{"v3"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	var seq []string
	retained, v3 := false, false
	deadline := time.After(5 * time.Second)
	for !retained || !v3 {
		select {
		case e := <-got:
			seq = append(seq, fmt.Sprintf("%v retained=%v", e.Args[0], e.Retained))
			retained = retained || e.Retained
			v3 = v3 || e.Args[0] == "v3"
		case <-deadline:
			t.Fatalf("events %v: want the retained v2 and v3", seq)
		}
	}
	for quiet := time.After(200 * time.Millisecond); ; {
		select {
		case e := <-got:
			seq = append(seq, fmt.Sprintf("%v retained=%v", e.Args[0], e.Retained))
			continue
		case <-quiet:
		}
		break
	}
	if want := []string{"v2 retained=true", "v3 retained=false"}; fmt.Sprint(seq) != fmt.Sprint(want) {
		t.Fatalf("the subscriber on B got %q, want %q", seq, want)
	}
}
