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
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// One part of a paced answer, or one acknowledgement of a part, lost on
// its way (the asker's inbound budget full of events, its outbound queue
// full, a cut): the part goes again once unacknowledged for four of the
// asker's recent round trips (at least two heartbeats), and the asker
// acknowledges a part it has again. Before, the answer's next part waited
// pacedWait (4 s), and so did the answering node's other answers to that
// asker, while the asker's gather, which waits pacedWait after a part,
// ended first: the answer missing, none of its 300 retained events
// delivered.
func TestPacedLostPartOrAckSentAgain(t *testing.T) {
	for _, lose := range []string{"ack", "part", "last"} {
		t.Run(lose, func(t *testing.T) { testPacedLost(t, lose) })
	}
}

func testPacedLost(t *testing.T, lose string) {
	leafAddr := edgetest.FreeAddr(t)
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = leafAddr })
	ctx := ctxT(t, 60*time.Second)
	// 300 retained events of 1 KiB under each of two prefixes: about 5
	// parts each.
	const topics = 300
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for _, prefix := range []string{"com.first.", "com.ret."} {
		for i := 0; i < topics; i++ {
			if err := pub.Publish(ctx, fmt.Sprintf("%s%d", prefix, i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the hub learns that the edge reads parts
	// A first answer, whole: the hub learns the round trip of a part.
	first := edge.dial(edge.ws(), proto.MsgPack)
	var firstGot atomic.Int64
	if _, err := first.Subscribe(ctx, "com.first.", func(*client.Event) { firstGot.Add(1) }, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() error {
		if k := firstGot.Load(); k < topics {
			return fmt.Errorf("first get_retained: %d of %d", k, topics)
		}
		return nil
	})
	var dropped atomic.Int32
	ackSubj, partPrefix := nodeSubject("hub", "g"), nodeInbox("edge1")+".p."
	drop := func(ms []*nats.Msg) {
		for _, m := range ms {
			switch {
			case lose == "ack" && m.Subject == ackSubj:
			case lose == "part" && strings.HasPrefix(m.Subject, partPrefix):
				// The answer's second part: its offset past 0.
				_, k := binary.Uvarint(m.Data)
				if off, k2 := binary.Uvarint(m.Data[max(k, 0):]); k <= 0 || k2 <= 0 || off == 0 {
					continue
				}
			case lose == "last" && strings.HasPrefix(m.Subject, partPrefix):
				// The answer's last part: it ends at its total.
				total, k := binary.Uvarint(m.Data)
				if off, k2 := binary.Uvarint(m.Data[max(k, 0):]); k <= 0 || k2 <= 0 || off == 0 || off+uint64(len(m.Data)-k-k2) != total {
					continue
				}
			default:
				continue
			}
			if dropped.CompareAndSwap(0, 1) {
				m.Data = nil // lost
			}
		}
	}
	if lose == "ack" {
		hub.n.testHookControl.Store(&drop)
	} else {
		edge.n.testHookControl.Store(&drop)
	}
	sub := edge.dial(edge.ws(), proto.MsgPack)
	var got atomic.Int64
	start := time.Now()
	if _, err := sub.Subscribe(ctx, "com.ret.", func(e *client.Event) {
		if e.Retained {
			got.Add(1)
		}
	}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	all := within(15*time.Second, func() error {
		if k := got.Load(); k < topics {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("%ss dropped %d; %d of %d retained events after %v; gathers incomplete %d, paced answers dropped %d, parts taken for lost %d",
		lose, dropped.Load(), got.Load(), topics, took.Round(time.Millisecond), edge.n.Stats().GathersIncomplete.Load(), hub.n.Stats().PacedDropped.Load(), hub.n.Stats().PacedLost.Load())
	if dropped.Load() != 1 {
		t.Fatalf("no %s dropped", lose)
	}
	if !all || edge.n.Stats().GathersIncomplete.Load() != 0 {
		t.Fatalf("after one lost %s: %d of %d retained events in %v", lose, got.Load(), topics, took.Round(time.Millisecond))
	}
}

// A part taken for lost goes again, from where it began, within pacedWait
// of its answer's last acknowledgement; an asker that acknowledges none
// of it still has the answer dropped after pacedWait, as before, so a
// gone gather is sent a part at most every pacedLost until then.
func TestPacedLostPartSentAgainWithinPacedWait(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n.peers.byName["a"] = &peer{name: "a", readsParts: true, partsAgain: true}
	inbox := nodeInbox("a")
	n.answerQuery("a", inbox, true, inbox+".a.1.1.500.b1", make([]byte, 3*pacedPart))
	// The node's own dispatchers never run: its state is read unlocked.
	pt := n.paced["a"]
	if pt == nil || len(pt.flight) != 1 || pt.flight[0].end != pacedPart {
		t.Fatalf("first part: %+v", pt)
	}
	sent := pt.flight[0].sentAt
	// No round trip known: a part waits half pacedWait.
	n.sweepPaced(sent.Add(n.pacedWait() / 2))
	if len(pt.flight) != 1 || pt.flight[0].sentAt != sent || n.stats.PacedLost.Load() != 0 {
		t.Fatalf("taken for lost with no round trip known: %+v", pt)
	}
	n.pacedRTT["a"] = 10 * time.Millisecond
	lost := n.pacedLost("a") // two heartbeats, half peer_timeout: 1 s
	n.sweepPaced(sent.Add(lost + time.Millisecond))
	if len(pt.flight) != 1 || pt.flight[0].end != pacedPart || pt.flight[0].n != pacedPart || pt.flight[0].sentAt == sent || n.stats.PacedLost.Load() != 1 {
		t.Fatalf("after %v unacknowledged: %+v (lost %d)", lost, pt.flight, n.stats.PacedLost.Load())
	}
	n.sweepPaced(time.Now().Add(n.pacedWait() + time.Second))
	if n.pacedBytes != 0 || n.paced["a"] != nil || n.stats.PacedDropped.Load() != 1 {
		t.Fatalf("after pacedWait unacknowledged: %d bytes held, %d dropped", n.pacedBytes, n.stats.PacedDropped.Load())
	}
}

// A part of one of several answers to an asker, which take turns, is
// sent again once taken for lost, as long as that part went out within
// pacedWait: the answer's own last acknowledgement is older when its
// turn came after the others' parts (over a slow uplink, 16 answers of a
// few parts each: a part of each every 16 round trips, past pacedWait).
// It was dropped at pacedLost instead, where before e11caa7 it waited
// pacedWait for the acknowledgement, and README drops an answer only
// when its asker acknowledges nothing for pacedWait.
func TestPacedLostPartOfAnswerTakingTurnsSentAgain(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Heartbeat: 50 * time.Millisecond, PeerTimeout: 150 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n.peers.byName["a"] = &peer{name: "a", readsParts: true, partsAgain: true}
	inbox := nodeInbox("a")
	n.answerQuery("a", inbox, true, inbox+".a.1.1.500.b1", make([]byte, 3*pacedPart))
	n.answerQuery("a", inbox, true, inbox+".a.2.1.500.b1", make([]byte, 3*pacedPart))
	// The node's own dispatchers never run: its state is read unlocked.
	pt := n.paced["a"]
	time.Sleep(n.pacedWait() + 50*time.Millisecond) // the second answer waits its turn
	ack := func(tail string, off int) {
		w := wr{pacedNext}
		w.uv(uint64(off))
		n.pacedAck("a", append(w, tail...))
	}
	ack("1.1.500.b1", pacedPart)   // the first answer's second part goes
	ack("1.1.500.b1", 2*pacedPart) // then the second answer's first
	if len(pt.flight) != 1 || pt.flight[0].h.tail != "2.1.500.b1" || pt.flight[0].end != pacedPart {
		t.Fatalf("in flight: %+v", pt.flight)
	}
	f := pt.flight[0]
	n.pacedRTT["a"] = 10 * time.Millisecond
	lost := n.pacedLost("a") // two heartbeats: 100 ms, within pacedWait (300 ms)
	n.sweepPaced(f.sentAt.Add(lost + time.Millisecond))
	if n.stats.PacedDropped.Load() != 0 || n.stats.PacedLost.Load() != 1 || indexHeld(pt.q, f.h) < 0 || f.h.off != 0 {
		t.Fatalf("its part unacknowledged for %v: %d answers dropped, %d parts taken for lost, in flight %+v", lost, n.stats.PacedDropped.Load(), n.stats.PacedLost.Load(), pt.flight)
	}
	// It goes again in its turn, after the first answer's last part.
	ack("1.1.500.b1", 3*pacedPart)
	if len(pt.flight) != 1 || pt.flight[0].h != f.h || pt.flight[0].end != pacedPart || pt.flight[0].sentAt == f.sentAt {
		t.Fatalf("not sent again: in flight %+v", pt.flight)
	}
	// Unacknowledged for pacedWait since it first went: dropped, as before.
	n.sweepPaced(f.sentAt.Add(n.pacedWait() + time.Millisecond))
	if n.stats.PacedDropped.Load() != 1 || indexHeld(pt.q, f.h) >= 0 {
		t.Fatalf("after pacedWait: %d answers dropped, held %v", n.stats.PacedDropped.Load(), indexHeld(pt.q, f.h) >= 0)
	}
}

// An asking node of the previous release, whose heartbeats do not say
// that it acknowledges a part it has again (hbPartsAgain), is sent no
// part again: it takes a part that comes twice for one out of order and
// drops the whole answer, so a part whose acknowledgement was only later
// than pacedLost (at least 1 s) lost it. Its part waits pacedWait for
// the acknowledgement, as before e11caa7, then the answer is dropped.
func TestPacedPartNotSentAgainToAskerOfPreviousRelease(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if hb := binary.AppendUvarint(binary.AppendUvarint(nil, 12345), hbPacedAnswers|hbPartsAgain); !readsPacedAnswers(hb) || hbFlags(hb)&hbPartsAgain == 0 || hbFlags(hb[:2]) != 0 {
		t.Fatal("the heartbeat's flags after its clock are misread")
	}
	n.peers.byName["old"] = &peer{name: "old", readsParts: true} // hbPacedAnswers alone
	inbox := nodeInbox("old")
	n.answerQuery("old", inbox, true, inbox+".a.1.1.500.b1", make([]byte, 3*pacedPart))
	// The node's own dispatchers never run: its state is read unlocked.
	pt := n.paced["old"]
	if pt == nil || len(pt.flight) != 1 {
		t.Fatalf("first part: %+v", pt)
	}
	f := pt.flight[0]
	n.pacedRTT["old"] = 10 * time.Millisecond
	n.sweepPaced(f.sentAt.Add(n.pacedLost("old") + time.Millisecond))
	if len(pt.flight) != 1 || pt.flight[0].sentAt != f.sentAt || n.stats.PacedLost.Load() != 0 || n.stats.PacedDropped.Load() != 0 {
		t.Fatalf("after pacedLost: in flight %+v (was %+v), %d taken for lost, %d dropped", pt.flight, f, n.stats.PacedLost.Load(), n.stats.PacedDropped.Load())
	}
	n.sweepPaced(f.sentAt.Add(n.pacedWait() + time.Millisecond))
	if n.pacedBytes != 0 || n.paced["old"] != nil || n.stats.PacedDropped.Load() != 1 || n.stats.PacedLost.Load() != 0 {
		t.Fatalf("after pacedWait: %d bytes held, %d dropped, %d taken for lost", n.pacedBytes, n.stats.PacedDropped.Load(), n.stats.PacedLost.Load())
	}
}
