package edge

import (
	"fmt"
	"testing"
	"time"
)

// A node that leaves cleanly (Shutdown: its goodbye, then its server's
// links close) loses nothing on the links it had: their closes are not
// counted in its neighbours' Stats.Disconnects
// (edgewamp_mesh_nats_disconnects_total, which says a link was lost with
// what it carried), so that a rolling restart, or an edge switched off,
// does not look like a flapping link.
func TestCleanLeaveNotCountedAsDisconnect(t *testing.T) {
	t.Parallel()
	t.Run("leaf", func(t *testing.T) {
		t.Parallel()
		hub, edge, _ := hubAndEdgeWith(t, func(o *Options) {})
		edge.stop()
		settledAfterLeave(t, hub)
	})
	t.Run("route", func(t *testing.T) {
		t.Parallel()
		nodes := cluster(t, "a", "b")
		nodes[1].stop()
		settledAfterLeave(t, nodes[0])
	})
}

// settledAfterLeave waits until survivor has forgotten the node that left
// and its server's links are gone, then checks nothing counted the leave.
func settledAfterLeave(t *testing.T, survivor *tnode) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		if p := survivor.n.Peers(); len(p) != 0 {
			return fmt.Errorf("%s still sees %v", survivor.name, p)
		}
		if lz, err := survivor.n.srv.Leafz(nil); err != nil || len(lz.Leafs) != 0 {
			return fmt.Errorf("leaf links still up")
		}
		if rz, err := survivor.n.srv.Routez(nil); err != nil || len(rz.Routes) != 0 {
			return fmt.Errorf("routes still up")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a close counted late (its grace) shows by now
	if d := survivor.n.Stats().Disconnects.Load(); d != 0 {
		t.Errorf("%s counted %d disconnects for a node that left cleanly", survivor.name, d)
	}
}
