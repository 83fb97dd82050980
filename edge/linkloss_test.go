package edge

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A leaf link cut and restored before either node takes the other for
// dead (what it carried is lost: NATS is at most once) is counted on both
// sides (Stats.Disconnects, edgewamp_mesh_nats_disconnects_total), as
// README's "Delivery" says a link's loss shows. With the embedded server
// only a lost nats_url connection was counted, so such a flap showed
// nowhere (nor in peers_lost_total).
func TestShortLeafFlapCounted(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.PeerTimeout = 10 * time.Second })
	if d := hub.n.Stats().Disconnects.Load() + edge.n.Stats().Disconnects.Load(); d != 0 {
		t.Fatalf("%d disconnects counted before the cut", d)
	}
	px.cut()
	time.Sleep(200 * time.Millisecond)
	px.restore()
	eventually(t, 15*time.Second, func() error {
		h, e := hub.n.Stats().Disconnects.Load(), edge.n.Stats().Disconnects.Load()
		if h != 1 || e != 1 {
			return fmt.Errorf("disconnects counted: hub %d, edge %d", h, e)
		}
		if lz, err := hub.n.srv.Leafz(nil); err != nil || len(lz.Leafs) != 1 {
			return errors.New("the leaf link is not back")
		}
		return nil
	})
	if l := hub.n.Stats().PeersLost.Load() + edge.n.Stats().PeersLost.Load(); l != 0 {
		t.Fatalf("%d peers lost: the flap was not short", l)
	}
}

// A route between two nodes of a cluster cut and restored before either
// takes the other for dead is counted as the leaf link's cut is, on both
// sides. The embedded server names a route's close "Router connection
// closed", which linkClosed did not match: a route's loss, and what it
// carried, showed nowhere.
func TestShortRouteFlapCounted(t *testing.T) {
	t.Parallel()
	a, _, c, pa, pc := proxiedTriangle(t, func(o *Options) { o.PeerTimeout = 10 * time.Second })
	if d := a.n.Stats().Disconnects.Load() + c.n.Stats().Disconnects.Load(); d != 0 {
		t.Fatalf("%d disconnects counted before the cut", d)
	}
	pa.cut()
	pc.cut()
	time.Sleep(200 * time.Millisecond)
	pa.restore()
	pc.restore()
	eventually(t, 15*time.Second, func() error {
		if da, dc := a.n.Stats().Disconnects.Load(), c.n.Stats().Disconnects.Load(); da == 0 || dc == 0 {
			return fmt.Errorf("disconnects counted: a %d, c %d", da, dc)
		}
		return nil
	})
	if l := a.n.Stats().PeersLost.Load() + c.n.Stats().PeersLost.Load(); l != 0 {
		t.Fatalf("%d peers lost: the flap was not short", l)
	}
}
