package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE repeated while the session's 16 gathers are
// under way is merged into the one waiting for a turn (maxMergedAsks);
// past 64 merged, each further repetition got this node's retained events
// at once, charged nothing, in debt or not: while another node answered
// slowly, a session repeating a 40-byte SUBSCRIBE of a topic with a large
// event retained on its own node had it encoded and sent each time. Such
// a repetition now takes its turn in the walk budget, as an exact
// get_retained SUBSCRIBE does on one node: at once while the session is
// not in debt, charged by the bytes sent; later when it is.
func TestMeshRetainedPastMergesCharged(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	big := strings.Repeat("k", 128<<10)
	pub := e.join(proto.JSON)
	pub.publish("com.big", map[string]any{"retain": true}, []any{big}, nil)
	mm.sync()
	att := e.join(proto.JSON)
	e.advance(time.Minute)             // the budget full; the clock stops here
	mm.nodes[0].gatherHold.Store(true) // node B answers slowly
	const n = 160
	events := 0
	drain := func() {
		for len(att.peer.in) > 0 {
			if m := <-att.peer.in; m.Type == proto.CodeEvent {
				events++
			}
		}
	}
	for range n {
		att.subscribeRetained("com.big")
		drain()
	}
	mm.sync()
	drain()
	lim := walkBurst*retainedBytesPerEntry/len(big) + 1
	t.Logf("%d repeated get_retained SUBSCRIBEs while B is slow, the clock stopped: %d events of %d bytes sent at once (limit %d)", n, events, len(big), lim)
	if events > lim {
		t.Fatalf("%d repeated get_retained SUBSCRIBEs while the other node was slow had this node's %d-byte retained event sent %d times with the clock stopped; the walk budget allows %d", n, len(big), events, lim)
	}
	// None is lost: B answers, the budget refills, each SUBSCRIBE gets it.
	mm.nodes[0].releaseGathers()
	for i := 0; events < n && i < 2000; i++ {
		mm.sync()
		drain()
		if events < n {
			e.advance(100 * time.Millisecond)
		}
	}
	if events != n {
		t.Fatalf("%d retained events delivered for %d get_retained SUBSCRIBEs, want one each", events, n)
	}
}
