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
// 1 KiB) whose process stalls twice in a row with a part on its way,
// before reading anything between (TestStalledTwiceKeepsLivePeer), the
// second stall past pacedWait: the asker is spared, not taken for dead,
// and its answer must not be dropped either for acknowledgements this
// node could not read while it did not run.
func TestStalledTwicePacedAnswerNotDropped(t *testing.T) {
	const (
		hb     = 100 * time.Millisecond
		pt     = time.Second // pacedWait 2 s
		stall1 = 1500 * time.Millisecond
		stall2 = 2500 * time.Millisecond
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
		o.GatherTimeout = 3 * time.Second
		if o.Name == "b" {
			o.PeerTimeout = 30 * time.Second // b is not stalled: it keeps a
		}
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
	time.Sleep(4 * hb) // a learns that b reads parts
	var held sync.RWMutex
	// The pump waits while held is locked: an empty critical section on
	// purpose.
	pump := func() {
		held.RLock()
		//lint:ignore SA2001 a gate, not a guard of data
		held.RUnlock()
	}
	a.n.testHookControlPump.Store(&pump)
	t.Cleanup(func() { a.n.testHookControlPump.Store(nil) })
	var state atomic.Int32
	done := make(chan struct{})
	// Once b takes a part of a's answer, a reads nothing more (its pump,
	// waiting for a batch, passes one more): a part is on its way.
	partPrefix := nodeInbox("b") + ".p."
	first := func(ms []*nats.Msg) {
		for _, m := range ms {
			if strings.HasPrefix(m.Subject, partPrefix) && state.CompareAndSwap(0, 1) {
				held.Lock()
			}
		}
	}
	b.n.testHookControl.Store(&first)
	t.Cleanup(func() { b.n.testHookControl.Store(nil) })
	tick := func() {
		switch state.Load() {
		case 1:
			time.Sleep(stall1)
			state.Store(2)
		case 2: // a tick after the first waking
			time.Sleep(stall2)
			state.Store(3)
			time.AfterFunc(20*time.Millisecond, func() { held.Unlock(); close(done) })
		}
	}
	a.n.testHookTick.Store(&tick)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	sub := b.dial(b.ws(), proto.MsgPack)
	var got atomic.Int64
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("a's dispatcher never stalled twice with a part on its way (state %d, %d events got)", state.Load(), got.Load())
	}
	woke := time.Now()
	all := within(15*time.Second, func() error {
		if k := got.Load(); k < topics {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	t.Logf("%v after the second waking: %d of %d retained events; a: paced answers dropped %d, parts taken for lost %d, peers lost %d; b: gathers incomplete %d",
		time.Since(woke).Round(time.Millisecond), got.Load(), topics, a.n.Stats().PacedDropped.Load(), a.n.Stats().PacedLost.Load(),
		a.n.Stats().PeersLost.Load(), b.n.Stats().GathersIncomplete.Load())
	if !all || a.n.Stats().PacedDropped.Load() != 0 {
		t.Errorf("a, stalled twice (%v, %v) with a part of its paced answer to live b on its way, dropped %d paced answers: b got %d of %d retained events",
			stall1, stall2, a.n.Stats().PacedDropped.Load(), got.Load(), topics)
	}
}
