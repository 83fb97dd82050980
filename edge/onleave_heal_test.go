package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// TestOnLeaveOnceAfterAHealedCut: edge1's leaf link to the hub is cut for
// longer than peer_timeout, so the hub takes edge1 for dead and announces
// the on_leave of its three sessions to its subscriber; then the link
// heals, edge1 (the same life, its sessions alive all along) is a peer
// again, and one of those sessions closes. Its own on_leave, which edge1
// publishes, reached the subscriber a second time: a presence count
// went down twice for one session. It is now dropped on the hub, which
// remembers the sessions it announced; the on_leave of a session that
// joined edge1 after the heal still comes, once.
func TestOnLeaveOnceAfterAHealedCut(t *testing.T) {
	t.Parallel()
	leafAddr := edgetest.FreeAddr(t)
	px := newProxy(t, leafAddr)
	fast := func(o *Options) {
		o.Heartbeat = 100 * time.Millisecond
		o.PeerTimeout = time.Second
	}
	hub := startNode(t, "hub", func(o *Options) { fast(o); o.Leaf.Listen = leafAddr; o.Leaf.Advertise = px.addr() })
	edge := startNode(t, "edge1", func(o *Options) { fast(o); o.Leaf.Remotes = []string{"nats://" + px.addr()} })
	waitMesh(t, hub, edge)
	sess, l := threeAndAListener(t, edge, hub)
	tracked(t, hub, 3)

	px.cut()
	eventually(t, 5*time.Second, func() error {
		if l.total() < 3 {
			return errNotYet
		}
		return nil
	})
	px.restore()
	waitMesh(t, hub, edge)
	for _, s := range sess {
		if k := l.count(s.ID()); k != 1 {
			t.Fatalf("on_leave of edge1's session %d %d times after the cut, want once", s.ID(), k)
		}
	}

	later := edge.dial(edge.ws(), proto.JSON) // joins after the heal: tracked again
	tracked(t, hub, 1)
	sess[0].Close()
	<-sess[0].Done()
	later.Close()
	eventually(t, 5*time.Second, func() error {
		if l.count(later.ID()) != 1 {
			return fmt.Errorf("on_leave of the session that joined after the heal: %d, want 1", l.count(later.ID()))
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // any copy
	if k := l.count(sess[0].ID()); k != 1 {
		t.Fatalf("on_leave of edge1's session %d %d times: announced by the hub when edge1 was cut off, then its own after the heal; want once", sess[0].ID(), k)
	}
}
