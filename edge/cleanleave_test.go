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

// A node's goodbye goes before its links close, by as long as its
// Shutdown takes between the two (its goroutines, its claims' releases
// for up to 2 s, the last flush, its JetStream's stop): on a loaded host,
// more than linkLeaveGrace. The neighbour counted the links' closes then
// (TestCleanLeaveNotCountedAsDisconnect/route under load, CI at cd24d28:
// 1 disconnect): it took only a goodbye heard within linkLeaveGrace
// before a close as the close's reason. Here a's dispatcher has heard b's
// goodbye 3 s before b's link closes.
func TestSlowCleanLeaveNotCountedAsDisconnect(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a := nodes[0]
	a.n.noteLeft("b", 1)   // as the control dispatcher does on b's goodbye
	a.n.forgetLeft("b", 1) // a heartbeat of b's that left, late: kept
	time.Sleep(linkLeaveGrace + time.Second)
	a.n.linkLost("b") // b's server's link closes
	time.Sleep(linkLeaveGrace + 500*time.Millisecond)
	if d := a.n.Stats().Disconnects.Load(); d != 0 {
		t.Errorf("a counted %d disconnects for b's link, closed 3 s after b's goodbye", d)
	}

	// A node heard again after its goodbye (restarted) whose link is
	// then lost is counted.
	// Restarted within the grace: the old life's link closes after its
	// goodbye, the new life is heard just after: not counted.
	a.n.noteLeft("d", 1)
	a.n.linkLost("d")
	a.n.forgetLeft("d", 2)
	a.n.noteLeft("c", 1)
	a.n.forgetLeft("c", 2) // c's next life heard (its heartbeat)
	a.n.linkLost("c")
	time.Sleep(linkLeaveGrace + 500*time.Millisecond)
	if d := a.n.Stats().Disconnects.Load(); d != 1 {
		t.Errorf("a counted %d disconnects for the lost link of a node heard again after its goodbye, want 1", d)
	}
}

// A goodbye stands for its node's links only until another life of the
// node is heard (forgetLeft, on a heartbeat with another boot): a link of
// that life cut just after is counted, well within leftKeep of the
// goodbye (before 8f1ec26 such a cut within linkLeaveGrace of the
// goodbye was missed).
func TestRestartedLifeCutCountedAfterGoodbye(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a := nodes[0]
	a.n.noteLeft("b", 1)   // b's goodbye
	a.n.forgetLeft("b", 3) // a heartbeat of b's next life (or of another node named b)
	time.Sleep(10 * time.Millisecond)
	a.n.linkLost("b") // that life's link is cut
	time.Sleep(linkLeaveGrace + 500*time.Millisecond)
	if d := a.n.Stats().Disconnects.Load(); d != 1 {
		t.Errorf("a counted %d disconnects for the cut of b's next life, heard after its goodbye; want 1", d)
	}
}
