package edge

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A node whose control dispatcher is late at every tick (a busy or
// starved host) credits a stall at each (runControl), and its live
// askers, heard between two ticks, each time. A part of a paced answer
// lost on its way must still be taken for lost and sent again after
// pacedLost and a stall, in time for the asker, which waits pacedWait
// for it: the part's sending is credited one stall, not one at each tick.
//
// a's dispatcher wakes once a period P (late, a tick, its batch: 0.6 s
// alone, longer under load), and the part goes again about P (the
// acknowledgement of the part before it read) + P (the one credit) +
// pacedLost + P (the sweep's tick) after b had the part before it:
// pacedLost is pacedWait/4 here (its floor, peer_timeout/2: the credit
// keeps the round trips short), so it comes in time while 3P is under
// 3/4 of pacedWait. At peer_timeout 2 s that was P under 1 s, which a
// loaded host passed (1 of 7 runs at load ~10 got none of the events);
// at 4 s, P may reach 2 s. Credited at each tick, the part's age grows
// by a heartbeat and a batch a period, under a quarter of P on a host
// not loaded: it is taken for lost after over 4 × pacedLost, past
// pacedWait, whatever peer_timeout is.
func TestLateDispatcherPacedLostPartSentAgain(t *testing.T) {
	const (
		hb   = 100 * time.Millisecond
		pt   = 4 * time.Second // pacedWait 8 s, pacedLost 2 s (at most 4 s)
		late = 500 * time.Millisecond
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
		// The query waits for a's late dispatcher before the notice
		// comes back: past the default 500 ms under load.
		o.GatherTimeout = 3 * time.Second
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
	hook := func() { time.Sleep(late) }
	a.n.testHookTick.Store(&hook)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	time.Sleep(2 * (late + hb))
	// b loses the first part of a's answer past its start.
	var dropped atomic.Int32
	var lostAt, againAt atomic.Int64 // when b lost the part, had it again
	var lostOff atomic.Uint64
	partPrefix := nodeInbox("b") + ".p."
	drop := func(ms []*nats.Msg) {
		for _, m := range ms {
			if !strings.HasPrefix(m.Subject, partPrefix) || len(m.Data) == 0 {
				continue
			}
			_, k := binary.Uvarint(m.Data)
			off, k2 := binary.Uvarint(m.Data[max(k, 0):])
			if k <= 0 || k2 <= 0 || off == 0 || len(m.Data) == k+k2 {
				continue
			}
			if dropped.CompareAndSwap(0, 1) {
				m.Data = nil // lost
				lostOff.Store(off)
				lostAt.Store(time.Now().UnixNano())
			} else if off == lostOff.Load() && againAt.Load() == 0 {
				againAt.Store(time.Now().UnixNano())
			}
		}
	}
	b.n.testHookControl.Store(&drop)
	t.Cleanup(func() { b.n.testHookControl.Store(nil) })
	sub := b.dial(b.ws(), proto.MsgPack)
	var got atomic.Int64
	start := time.Now()
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	all := within(30*time.Second, func() error {
		if k := got.Load(); k < topics {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	again := "never"
	if at := againAt.Load(); at != 0 {
		again = time.Duration(at-lostAt.Load()).Round(time.Millisecond).String() + " later"
	}
	t.Logf("%v: %d of %d retained events (a part lost: %v, sent again %s); a (its dispatcher %v late at each tick): parts taken for lost %d, answers dropped %d, credited %v; b: gathers incomplete %d",
		time.Since(start).Round(time.Millisecond), got.Load(), topics, dropped.Load() == 1, again, late, a.n.Stats().PacedLost.Load(), a.n.Stats().PacedDropped.Load(),
		time.Duration(a.n.stallCredit.Load()).Round(time.Millisecond), b.n.Stats().GathersIncomplete.Load())
	if dropped.Load() != 1 {
		t.Fatal("no part of a's answer was lost")
	}
	if !all || b.n.Stats().GathersIncomplete.Load() != 0 {
		t.Errorf("a part of a's paced answer lost on its way, a's dispatcher %v late at each tick: b got %d of %d retained events (its gathers incomplete %d; a took %d parts for lost)",
			late, got.Load(), topics, b.n.Stats().GathersIncomplete.Load(), a.n.Stats().PacedLost.Load())
	}
}
