package edge

import (
	"errors"
	"fmt"
	"strconv"
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

// The duplicate filter remembers the last 4,096 publication ids, which
// held while the copies NATS handed a node for its overlapping
// subscriptions came back to back. With one session's 1,000 overlapping
// prefixes on b (1,000 copies of each event) and another node's stream of
// events in between, the window forgot an id before its last copy came,
// and an innocent exact subscriber on b got the same event more than once
// (in 4 of 6 runs on a 2-CPU machine). NATS now hands b each event once
// (its event subscriptions are queue subscriptions in one group of its
// own): every event arrives once, and b drops no copy.
//
// Not parallel, as TestOverlappingPrefixesDoNotAmplifyEvents.
func TestOverlappingSubscriptionsDeliverEventsOnce(t *testing.T) {
	nodes := cluster(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)
	const levels = 1000
	deep := deepTopic(levels + 10)
	innocent := b.dial(b.rs(), proto.MsgPack)
	var imu sync.Mutex
	counts := map[uint64]int{}
	if _, err := innocent.Subscribe(ctx, deep, func(e *client.Event) {
		imu.Lock()
		counts[e.PublicationID]++
		imu.Unlock()
	}, nil); err != nil {
		t.Fatal(err)
	}
	noiseSub := b.dial(b.rs(), proto.MsgPack)
	if _, err := noiseSub.Subscribe(ctx, "noise", func(*client.Event) {}, &client.SubscribeOptions{Match: "prefix"}); err != nil {
		t.Fatal(err)
	}
	attacker := b.dial(b.rs(), proto.MsgPack)
	for l := 1; l <= levels; l++ {
		if _, err := attacker.Subscribe(ctx, deep[:2*l-1], func(*client.Event) {}, &client.SubscribeOptions{Match: "prefix"}); err != nil {
			t.Fatalf("prefix subscription %d: %v", l, err)
		}
	}
	pa := a.dial(a.rs(), proto.MsgPack)
	pc := c.dial(c.rs(), proto.MsgPack)
	waitInterest(t, ctx, noiseSub, pa) // b's interest has reached a
	waitInterest(t, ctx, innocent, pc) // and c
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pc.Publish(ctx, "noise."+strconv.Itoa(i%64), []any{i}, nil, nil)
		}
	}()
	const events = 300
	for i := 0; i < events; i++ {
		pa.Publish(ctx, deep, []any{i}, nil, nil)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		imu.Lock()
		n := len(counts)
		imu.Unlock()
		if n == events {
			break
		}
	}
	time.Sleep(time.Second) // any copy still on its way
	imu.Lock()
	defer imu.Unlock()
	twice, most := 0, 0
	for _, k := range counts {
		if k > 1 {
			twice++
		}
		most = max(most, k)
	}
	st := b.n.Stats()
	t.Logf("b: duplicates dropped %d, inbound_full %d, NATS disconnects %d", st.Duplicates.Load(), st.InboundFull.Load(), st.Disconnects.Load())
	if twice > 0 {
		t.Errorf("the exact subscriber on b got %d of %d events more than once (one of them %d times)", twice, len(counts), most)
	}
	if len(counts) != events {
		t.Errorf("the exact subscriber on b got %d of %d events", len(counts), events)
	}
	if d := st.Duplicates.Load(); d != 0 {
		t.Errorf("b dropped %d copies of events as duplicates: NATS handed it an event more than once", d)
	}
}
