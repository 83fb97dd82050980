package edge

import (
	"fmt"
	"testing"
	"time"

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
	hub, edge, px := fastHubAndEdge(t)
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

// fastHubAndEdge is hubAndEdge with a heartbeat of 100 ms and a peer
// timeout of 1 s.
func fastHubAndEdge(t *testing.T) (hub, edge *tnode, px *proxy) {
	t.Helper()
	return hubAndEdgeWith(t, func(o *Options) {
		o.Heartbeat = 100 * time.Millisecond
		o.PeerTimeout = time.Second
	})
}

// TestOnLeaveOfASessionThatJoinedDuringACut: a session joins edge1 while
// its link to the hub is cut (the hub has taken edge1 for dead): its
// on_join reaches no one on the hub. Once the link heals, the hub kept
// only the sessions it heard join since, so that when edge1 died later
// the subscriber on the hub never got that session's on_leave. The hub
// now gathers the other nodes' sessions again when a node's directory
// comes back.
func TestOnLeaveOfASessionThatJoinedDuringACut(t *testing.T) {
	t.Parallel()
	hub, edge, px := fastHubAndEdge(t)
	_, l := threeAndAListener(t, edge, hub)
	tracked(t, hub, 3)
	px.cut()
	eventually(t, 5*time.Second, func() error {
		if l.total() < 3 {
			return errNotYet
		}
		return nil
	})
	during := edge.dial(edge.ws(), proto.JSON)
	// Its on_join goes out while the link is down (edge1's outbound
	// queue sends within milliseconds): lost.
	time.Sleep(300 * time.Millisecond)
	px.restore()
	waitMesh(t, hub, edge)
	tracked(t, hub, 1) // during, not the three announced gone
	// A few heartbeats of edge1's new spell: the hub knows its session-id
	// slot again (a peer it has not had a heartbeat from has none).
	time.Sleep(300 * time.Millisecond)

	edge.n.nc.Close() // edge1 dies
	eventually(t, 5*time.Second, func() error {
		if k := l.count(during.ID()); k != 1 {
			return fmt.Errorf("on_leave of the session that joined edge1 during the cut: %d, want 1", k)
		}
		return nil
	})
}
