package route

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session's queue of get_retained gathers waiting for a turn
// (Session.retains) is bounded by its subscriptions and
// maxSessionGatherQueue. Before, it had no bound: an exact get_retained
// SUBSCRIBE followed by its UNSUBSCRIBE left its request queued (dropped
// only when its turn came), holding the subscription and URI the realm had
// already forgotten, so with the node's gathers slow (held here, as a peer
// slow to answer holds them up to gather_timeout) a session that looped
// over distinct 4 KiB topics made the router hold 4 KiB per pair, with no
// subscription left to count against max_subscriptions (1,984 queued,
// 7.9 MB, for 2,000 pairs).
func TestMeshGatherQueueBounded(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	c := es[0].join(proto.JSON)
	mm.nodes[0].gatherHold.Store(true)
	pad := strings.Repeat("x", 4000)
	const pairs = 2000
	for i := 0; i < pairs; i++ {
		uri := fmt.Sprintf("com.t%d.%s", i, pad)
		id := c.subscribe(uri, map[string]any{"get_retained": true})
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
		c.expect(proto.CodeUnsubscribed)
	}
	var queued, subs, realmSubs, heldBytes int
	c.exec.do(func() {
		queued = len(c.sess.retains.q)
		subs = len(c.sess.subs)
		for _, a := range c.sess.retains.q {
			heldBytes += len(a.sub.uri)
		}
	})
	rm := c.sess.realm
	rm.mu.RLock()
	realmSubs = len(rm.subByID)
	rm.mu.RUnlock()
	t.Logf("after %d SUBSCRIBE get_retained + UNSUBSCRIBE pairs: %d asks queued (%d bytes of URIs held), session subscriptions %d, realm subscriptions %d",
		pairs, queued, heldBytes, subs, realmSubs)
	if queued > subs+maxSessionGatherQueue {
		t.Errorf("%d gathers queued for a session holding %d subscriptions (%d KiB of forgotten topics held); want it bounded by its subscriptions",
			queued, subs, heldBytes>>10)
	}
	mm.nodes[0].releaseGathers()
	mm.sync()
}

// The same without UNSUBSCRIBE: SUBSCRIBE get_retained to one exact topic,
// again and again (the router answers each with the same subscription and
// window). One queued gather answers them all; before, each queued one
// that would query every node of the mesh in its turn (1,984 for one
// subscription).
func TestMeshGatherQueueOnePerWindow(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	c := es[0].join(proto.JSON)
	mm.nodes[0].gatherHold.Store(true)
	const n = 2000
	for i := 0; i < n; i++ {
		c.subscribe("com.same", map[string]any{"get_retained": true})
	}
	var queued, subs int
	c.exec.do(func() { queued, subs = len(c.sess.retains.q), len(c.sess.subs) })
	t.Logf("after %d SUBSCRIBE get_retained to one topic: %d gathers queued, %d subscription(s)", n, queued, subs)
	if queued > subs+maxSessionGatherQueue {
		t.Errorf("%d gathers queued for %d subscription(s); want it bounded by its subscriptions", queued, subs)
	}
	mm.nodes[0].gmu.Lock()
	held := len(mm.nodes[0].gheld)
	mm.nodes[0].gmu.Unlock()
	mm.nodes[0].releaseGathers()
	mm.sync()
	t.Logf("%d gathers were in flight (held)", held)
}
