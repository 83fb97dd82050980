package edge

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/route"
)

// A peer that dies before its first heartbeat (the messages that made it
// known were an answer, a delta or its sessions' on_join, which the
// router keeps) still has its sessions announced gone: its slot is
// derived from its name, as every node's is. Before, sessionsGone sent
// nothing for a peer without a slot from a heartbeat, and none of its
// tracked sessions got their on_leave (seen in a run of
// TestOnLeaveOfASessionThatJoinedDuringACut: "node joined" 15 ms before
// the kill, no heartbeat between).
func TestSessionsGoneBeforeFirstHeartbeat(t *testing.T) {
	n := &Node{evCh: make(chan *nats.Msg, 1), stop: make(chan struct{})}
	p := &peer{idx: 3, name: "node-b"}
	n.sessionsGone(p)
	select {
	case m := <-n.evCh:
		if !isGone(m) {
			t.Fatalf("not a gone word: %q", m.Subject)
		}
		r := rd{b: m.Data}
		idx, slot := r.uv(), r.uv()
		if r.err != nil || idx != 3 || slot != uint64(route.MeshSlot("node-b")) {
			t.Fatalf("gone word (%d, %d, %v), want (3, %d)", idx, slot, r.err, route.MeshSlot("node-b"))
		}
	default:
		t.Fatal("no gone word for a peer that died before its first heartbeat: its sessions' on_leave are never announced")
	}
}
