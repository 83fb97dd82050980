package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A gather waiting for an answer under way a part at a time (paced.go)
// from a node that goes silent ends when that node is taken for dead,
// as it ends without the answers of the other nodes it waits for: the
// answer is missing (counted in GathersIncomplete). It waited pacedWait
// (2 × peer_timeout) after the last part came, peer_timeout longer
// than the node took to be taken for dead.
func TestPacedGatherEndsWhenAnswererDies(t *testing.T) {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hole := newProxy(t, link.addr()) // the black hole the hub falls into
	const peerTimeout = 4 * time.Second
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Leaf.Advertise = hole.addr()
		o.PeerTimeout = peerTimeout
	})
	ctx := ctxT(t, 60*time.Second)
	// 600 retained events of 1 KiB (random: NATS compresses a leaf
	// link's traffic): 3 s over the link.
	const topics = 600
	pub := hub.dial(hub.ws(), proto.MsgPack)
	for i := 0; i < topics; i++ {
		if err := pub.Publish(ctx, fmt.Sprintf("com.ret.%d", i), []any{randomHex(512)}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	edge := startNode(t, "edge1", func(o *Options) {
		o.Leaf.Remotes = []string{"nats://" + hole.addr()}
		o.PeerTimeout = peerTimeout
	})
	waitMesh(t, hub, edge)
	time.Sleep(4 * defaultHeartbeat) // the hub learns that the edge reads parts
	sub := edge.dial(edge.ws(), proto.MsgPack)
	if _, err := sub.Subscribe(ctx, "com.ret.", func(*client.Event) {}, &client.SubscribeOptions{Match: "prefix", GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	underWay := func() bool {
		edge.n.gmu.Lock()
		defer edge.n.gmu.Unlock()
		for _, g := range edge.n.gathers {
			for _, pi := range g.paced {
				if len(pi.buf) > 0 && len(pi.buf) < pi.total {
					return true
				}
			}
		}
		return false
	}
	if !within(10*time.Second, func() error {
		if !underWay() {
			return fmt.Errorf("no answer under way")
		}
		return nil
	}) {
		t.Fatal("the hub's answer never came a part at a time")
	}
	st := edge.n.Stats()
	lost0, inc0 := st.PeersLost.Load(), st.GathersIncomplete.Load()
	hole.freeze()
	frozen := time.Now()
	var dead, ended time.Time
	for deadline := time.Now().Add(4 * peerTimeout); time.Now().Before(deadline) && ended.IsZero(); time.Sleep(5 * time.Millisecond) {
		if dead.IsZero() && st.PeersLost.Load() > lost0 {
			dead = time.Now()
		}
		if st.GathersIncomplete.Load() > inc0 {
			ended = time.Now()
		}
	}
	t.Logf("frozen; the hub taken for dead after %v, the gather ended after %v", sinceOr(dead, frozen), sinceOr(ended, frozen))
	if dead.IsZero() || ended.IsZero() {
		t.Fatalf("after the freeze: hub taken for dead %v, gather ended %v", !dead.IsZero(), !ended.IsZero())
	}
	if gap := ended.Sub(dead); gap > time.Second {
		t.Fatalf("the gather waited for the dead hub's answer under way %v after it was taken for dead", gap.Round(time.Millisecond))
	}
}

// sinceOr is t - from, or -1 when t is zero.
func sinceOr(t, from time.Time) time.Duration {
	if t.IsZero() {
		return -1
	}
	return t.Sub(from).Round(time.Millisecond)
}
