package edge

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// An edge client's prefix get_retained whose answer takes the slow uplink
// seconds, while live events of the prefix reach the same session faster
// than its held events' bound lasts (1,024): the held events go out in
// order once the bound is reached, and then the retained events too,
// those of topics no live event reached meanwhile (a retained event of a
// topic the subscriber got a live event of would be older than it).
// Before, the retained events of every pending window were skipped once
// the held events overflowed: none of 1,990 delivered.
func TestSlowUplinkGetRetainedBesideLiveEvents(t *testing.T) {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Leaf.Advertise = link.addr()
		o.GatherTimeout = 2 * time.Second
	})
	ctx := ctxT(t, 90*time.Second)
	// 2,000 retained events of 1 KiB (random: NATS compresses a leaf
	// link's traffic): about 2 MiB, 11 s over the link.
	const topics, liveTopics = 2000, 10
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.ret.%d", i), []any{"old", randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	edge := startNode(t, "edge1", func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + link.addr()}
		o.GatherTimeout = 2 * time.Second
	})
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the edge's heartbeats say it reads parts

	type ev struct {
		topic    string
		retained bool
		n        int64 // a live event's number, -1 for a retained one
	}
	var mu sync.Mutex
	var evs []ev
	var retained atomic.Int64
	// A subscriber on the edge to the topics the live events go to, with
	// no get_retained: the live events that crossed the uplink.
	other := edge.dial(edge.ws(), proto.MsgPack)
	var crossed atomic.Int64
	if _, err := other.Subscribe(ctx, "com.ret.", func(e *client.Event) { crossed.Add(1) }, &client.SubscribeOptions{Match: "prefix"}); err != nil {
		t.Fatal(err)
	}
	// 200 live events a second to ten of the retained topics, from the
	// hub, numbered.
	live := hub.dial(hub.ws(), proto.MsgPack)
	waitInterest(t, ctx, other, live)
	stop := make(chan struct{})
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		began := time.Now()
		for i := int64(0); ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Behind on a loaded machine: catch up, 200 a second.
			for ; i < int64(time.Since(began)/(5*time.Millisecond)); i++ {
				if err := live.Publish(ctx, fmt.Sprintf("com.ret.%d", i%liveTopics), []any{"live", i}, nil, nil); err != nil {
					return
				}
				published.Add(1)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(500 * time.Millisecond)

	sub := edge.dial(edge.ws(), proto.MsgPack)
	start := time.Now()
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		x := ev{topic: e.Topic, retained: e.Retained, n: -1}
		if e.Retained {
			retained.Add(1)
		} else if len(e.Args) == 2 {
			switch n := e.Args[1].(type) {
			case int64:
				x.n = n
			case uint64:
				x.n = int64(n)
			}
		}
		mu.Lock()
		evs = append(evs, x)
		mu.Unlock()
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	// Every retained event of a topic no live event goes to.
	all := within(40*time.Second, func() error {
		if k := retained.Load(); k < topics-liveTopics {
			return fmt.Errorf("%d of %d", k, topics-liveTopics)
		}
		return nil
	})
	took := time.Since(start)
	time.Sleep(time.Second) // the live events on their way
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	time.Sleep(time.Second)
	mu.Lock()
	got := append([]ev(nil), evs...)
	mu.Unlock()

	lastLive := map[string]bool{}
	var problems []string
	var liveN, first, prev int64 = 0, -1, -1
	retainedOf := map[string]int{}
	for _, e := range got {
		if e.retained {
			retainedOf[e.topic]++
			if lastLive[e.topic] {
				problems = append(problems, fmt.Sprintf("retained event of %s after a live one of it", e.topic))
			}
			continue
		}
		lastLive[e.topic] = true
		liveN++
		if first < 0 {
			first = e.n
		}
		if prev >= 0 && e.n != prev+1 {
			problems = append(problems, fmt.Sprintf("live event %d after %d", e.n, prev))
		}
		prev = e.n
	}
	for tp, k := range retainedOf {
		if k > 1 {
			problems = append(problems, fmt.Sprintf("%d retained events of %s", k, tp))
		}
	}
	lostE, lostH := edge.n.Stats().PeersLost.Load(), hub.n.Stats().PeersLost.Load()
	t.Logf("%d bytes crossed; %d retained events delivered (%d within %v); %d live events delivered (%d..%d) of %d published, %d crossed to the other subscriber; peers lost: edge %d, hub %d; gathers incomplete %d; parts taken for lost %d",
		link.bytes.Load(), retained.Load(), topics-liveTopics, took.Round(time.Millisecond), liveN, first, prev, published.Load(), crossed.Load(), lostE, lostH, edge.n.Stats().GathersIncomplete.Load(), hub.n.Stats().PacedLost.Load())
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	if lostE != 0 || lostH != 0 {
		t.Fatalf("a peer lost: edge %d, hub %d", lostE, lostH)
	}
	if !all || len(problems) > 0 || liveN < 1024 {
		t.Fatalf("%d of %d retained events of the topics without live events delivered, %d live events; %s", retained.Load(), topics-liveTopics, liveN, strings.Join(problems, "; "))
	}
}
