package edge

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node sending a paced answer (a get_retained of 300 retained events of
// 1 KiB, about 5 parts) whose process stops, with its asker's, while a
// part is on its way, for longer than pacedWait (2 s here): on waking it
// must not drop the answer (sweepPaced) for acknowledgements it could
// not read while it did not run; the asker, stalled too, still gets
// every event.
func stallChildPaced(t *testing.T) {
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = stallHeartbeat
		o.PeerTimeout = stallPeerTimeout
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	const topics = 300
	pub := a.dial(a.ws(), proto.MsgPack)
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.ret.%d", i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * stallHeartbeat) // a learns that b reads parts
	partPrefix := nodeInbox("b") + ".p."
	var once sync.Once
	wokeAt := make(chan time.Time, 1)
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if strings.HasPrefix(m.Subject, partPrefix) {
				once.Do(func() { wokeAt <- stallNow(t) })
				return
			}
		}
	}
	b.n.testHookControl.Store(&hook)
	defer b.n.testHookControl.Store(nil)
	sub := b.dial(b.ws(), proto.MsgPack)
	var got atomic.Int64
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	var woke time.Time
	select {
	case woke = <-wokeAt:
	case <-time.After(10 * time.Second):
		t.Fatal("b never took a part of a's answer")
	}
	all := within(10*time.Second, func() error {
		if k := got.Load(); k < topics {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	t.Logf("%v after waking: %d of %d retained events; a: paced answers dropped %d, parts taken for lost %d; b: gathers incomplete %d; peers lost a %d, b %d",
		time.Since(woke).Round(time.Millisecond), got.Load(), topics, a.n.Stats().PacedDropped.Load(), a.n.Stats().PacedLost.Load(),
		b.n.Stats().GathersIncomplete.Load(), a.n.Stats().PeersLost.Load(), b.n.Stats().PeersLost.Load())
	if !all || a.n.Stats().PacedDropped.Load() != 0 {
		t.Errorf("after a stall of their process with a part of a's paced answer on its way, b got %d of %d retained events (a dropped %d paced answers)", got.Load(), topics, a.n.Stats().PacedDropped.Load())
	}
}

// TestStalledPacedAnswerNotDropped: see stallChildPaced.
func TestStalledPacedAnswerNotDropped(t *testing.T) {
	stallChild(t, "paced", 3*stallPeerTimeout)
}
