package edge

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// Answers of less than a part to one asking node share the part's room
// in flight: as many go at once as make 64 KiB together, the next as the
// asker acknowledges them, so a node asked many small gathers at once
// (200 get_retained SUBSCRIBEs of a LAN node's sessions) does not make
// each wait a round trip behind the one before, and still sends the
// asker no more at once than one part. Before, one answer was in flight
// whatever its size: answers of 2 KiB went one per round trip.
func TestPacedSmallAnswersShareThePartInFlight(t *testing.T) {
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
	n.peers.byName["a"] = &peer{name: "a"}
	inbox := nodeInbox("a")
	const small, k = 2 << 10, 40
	tail := func(id int) string { return fmt.Sprintf("%d.1.500.b1", id) }
	for i := 0; i < k; i++ {
		n.answerQuery("a", inbox, true, inbox+".a."+tail(i), make([]byte, small))
	}
	fit := pacedPart / small // 32: a part's room
	if pt := n.paced["a"]; pt == nil || len(pt.q) != k-fit {
		held := 0
		if pt != nil {
			held = len(pt.q)
		}
		t.Fatalf("%d of %d answers of %d bytes held at once, want %d (those past %d bytes in flight)", held, k, small, k-fit, pacedPart)
	}
	ack := func(id, off int) {
		n.pacedAck("a", append(binary.AppendUvarint([]byte{pacedNext}, uint64(off)), tail(id)...))
	}
	ack(0, small) // one acknowledged: one more goes
	if pt := n.paced["a"]; pt == nil || len(pt.q) != k-fit-1 {
		t.Fatalf("after an acknowledgement: %+v", n.paced["a"])
	}
	// A larger answer waits for room for its part: held, announced.
	n.answerQuery("a", inbox, true, inbox+".a."+tail(100), make([]byte, 100<<10))
	if pt := n.paced["a"]; pt == nil || len(pt.q) != k-fit {
		t.Fatalf("a 100 KiB answer with a part's room in flight: %+v", n.paced["a"])
	}
	for i := 1; i < k; i++ {
		ack(i, small)
	}
	// The small ones sent, the large one's first part alone in flight.
	pt := n.paced["a"]
	if pt == nil || len(pt.q) != 1 || n.pacedBytes != 100<<10 || pt.q[0].off != pacedPart {
		t.Fatalf("after the small answers were acknowledged: %+v (%d bytes held)", pt, n.pacedBytes)
	}
	ack(100, pacedPart)
	if pt := n.paced["a"]; pt != nil && len(pt.q) != 0 || n.pacedBytes != 0 {
		t.Fatalf("after the large answer's first part was acknowledged: %+v (%d bytes held)", n.paced["a"], n.pacedBytes)
	}
}
