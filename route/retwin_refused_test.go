package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Past a get_retained window's held-events bound (winLive), a retained
// event is not delivered when the subscription was sent a live event of
// its topic meanwhile: older, it is superseded. A live event the session
// refused (longer than it accepts; slow) was not sent, and does not
// supersede it: before, its topic was remembered all the same, and the
// subscriber got no event of that topic at all, the live one refused and
// the retained one dropped as superseded.
func TestMeshRetainedWindowLiveEventRefusedKeepsRetained(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	for _, topic := range []string{"com.p.a", "com.p.b"} {
		pub.publish(topic, map[string]any{"retain": true, "acknowledge": true}, []any{"retained " + topic}, nil)
		pub.expect(proto.CodePublished)
	}
	sub := es[1].join(proto.MsgPack)
	mm.nodes[1].gatherHold.Store(true)
	sub.subscribe("com.p.", map[string]any{"match": "prefix", "get_retained": true})
	const n = maxWinHeldN + 10
	for i := range n {
		pub.publish("com.p.b", nil, []any{i}, nil)
		if i%1024 == 1023 { // within the test peer's inbox
			eventsOf(sub)
		}
	}
	mm.sync()
	eventsOf(sub)
	// A live event of com.p.a longer than the subscriber accepts.
	sub.peer.maxLen.Store(512)
	pub.publish("com.p.a", nil, []any{strings.Repeat("x", 2000)}, nil)
	mm.sync()
	if got := eventsOf(sub); len(got) != 0 {
		t.Fatalf("the long live event reached the subscriber: %q", got)
	}
	sub.peer.maxLen.Store(0)
	if _, _, marks, _ := winsOf(sub, "com.p."); marks != 1 {
		t.Errorf("%d topics remembered, want 1 (com.p.b)", marks)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	if got := eventsOf(sub); len(got) != 1 || got[0] != "retained com.p.a retained=true" {
		t.Fatalf("after the gather: %q, want com.p.a's retained event alone (com.p.b's superseded)", got)
	}
}
