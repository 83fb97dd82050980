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
)

// The first part of an answer sent without a notice, lost on its way: an
// answer of one part (more than 1 KiB, less than 64 KiB), or the first
// part of the first answer to a node (no round trip of it known yet).
// The asker did not know an answer was coming, so its gather ended at
// gather_timeout (500 ms) without it, while the answering node took the
// part for lost only after pacedLost (at least 1 s; 2 × peer_timeout
// with no round trip known): the caller got none of the node's retained
// events. Now a notice goes first, so that the asker waits for the
// answer, and a part with no round trip known is taken for lost after
// half the asker's wait, in time for it.
func TestPacedFirstPartLostSentAgain(t *testing.T) {
	for _, c := range []struct {
		name   string
		topics int
	}{{"only", 30}, {"first", 300}} {
		t.Run(c.name, func(t *testing.T) { testPacedFirstLost(t, c.topics) })
	}
}

func testPacedFirstLost(t *testing.T, topics int) {
	leafAddr := edgetest.FreeAddr(t)
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = leafAddr })
	ctx := ctxT(t, 60*time.Second)
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.ret.%d", i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the hub learns that the edge reads parts
	var dropped, parts atomic.Int32
	partPrefix := nodeInbox("edge1") + ".p."
	drop := func(ms []*nats.Msg) {
		for _, m := range ms {
			if !strings.HasPrefix(m.Subject, partPrefix) || len(m.Data) == 0 {
				continue
			}
			// A part with bytes at offset 0: the answer's first.
			total, k := binary.Uvarint(m.Data)
			off, k2 := binary.Uvarint(m.Data[max(k, 0):])
			if k <= 0 || k2 <= 0 || off != 0 || len(m.Data) == k+k2 {
				continue
			}
			parts.Add(1)
			if topics < 60 && int(total) != len(m.Data)-k-k2 {
				continue // not the answer whole
			}
			if dropped.CompareAndSwap(0, 1) {
				m.Data = nil // lost
			}
		}
	}
	edge.n.testHookControl.Store(&drop)
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
		if k := got.Load(); k < int64(topics) {
			return fmt.Errorf("%d of %d", k, topics)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("first parts dropped %d (of %d seen); %d of %d retained events after %v; gathers incomplete %d, paced answers dropped %d, parts taken for lost %d",
		dropped.Load(), parts.Load(), got.Load(), topics, took.Round(time.Millisecond), edge.n.Stats().GathersIncomplete.Load(), hub.n.Stats().PacedDropped.Load(), hub.n.Stats().PacedLost.Load())
	if dropped.Load() != 1 {
		t.Fatal("no first part dropped")
	}
	if !all || edge.n.Stats().GathersIncomplete.Load() != 0 {
		t.Fatalf("after its first part lost: %d of %d retained events in %v, %d gathers incomplete", got.Load(), topics, took.Round(time.Millisecond), edge.n.Stats().GathersIncomplete.Load())
	}
}
