package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// On a mesh a get_retained SUBSCRIBE delivers this node's retained events
// with the others' once they answer (retainedGathered); the others' were
// charged by their bytes, this node's not at all (on one node they are,
// sendRetained): a session repeating a get_retained SUBSCRIBE of a topic
// with a large retained event on its own node had it encoded and sent
// again each time, as fast as the gathers came back.
func TestMeshGetRetainedChargesThisNodesEvents(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	big := strings.Repeat("k", 512<<10)
	pub := e.join(proto.JSON)
	pub.publish("com.big", map[string]any{"retain": true}, []any{big}, nil)
	mm.sync()
	att := e.join(proto.JSON)
	e.advance(time.Minute) // the budget full; the clock stops here
	const n = 20
	events := 0
	for range n {
		att.subscribeRetained("com.big")
		mm.sync() // its gather answered before the next
		for len(att.peer.in) > 0 {
			if m := <-att.peer.in; m.Type == proto.CodeEvent {
				events++
			}
		}
	}
	// 512 KiB is 32 Ki entries of the budget's 64 Ki at once.
	lim := walkBurst*retainedBytesPerEntry/len(big) + 1
	t.Logf("%d get_retained SUBSCRIBEs of a topic with a %d-byte event retained on the subscriber's node, the clock stopped: %d events sent (limit %d)", n, len(big), events, lim)
	if events > lim {
		t.Fatalf("%d repeated get_retained SUBSCRIBEs had this node's %d-byte retained event sent %d times with the clock stopped; the walk budget allows %d", n, len(big), events, lim)
	}
	// None is lost: each SUBSCRIBE gets it as the budget refills.
	for i := 0; events < n && i < 2000; i++ {
		select {
		case m := <-att.peer.in:
			if m.Type == proto.CodeEvent {
				events++
			}
		default:
			e.advance(100 * time.Millisecond)
			mm.sync()
		}
	}
	if events != n {
		t.Fatalf("%d retained events delivered for %d get_retained SUBSCRIBEs, want one each", events, n)
	}
}
