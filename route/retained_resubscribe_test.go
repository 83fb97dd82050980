package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session already subscribed to a topic asks for its retained event
// with a second SUBSCRIBE (get_retained: true; same subscription id, as
// Autobahn does for a second handler, or as the HTTP gateway does for a
// second event stream of the same principal). v1 and v2 were published
// while it was subscribed, and are still on their way to its loop (the
// publisher's loop handed them over as tasks) when the SUBSCRIBE runs:
// the retained v2 is delivered, and, before, its window then dropped v1
// and v2 live as "superseded": v1, published while the session was a
// subscriber, was never delivered to it at all. Now the SUBSCRIBE of a
// subscriber opens no window: v1 and v2 come live, after the retained v2
// (which repeats one of them).
func TestRetainedResubscribeLosesLiveEvent(t *testing.T) {
	e := newEnv(t, 2, nil)
	pub := e.joinOn(0, proto.JSON)
	sub := e.joinOn(1, proto.JSON)
	sub.subscribe("com.state", nil) // subscribed before anything is published

	req := sub.nextReq()
	b, err := sub.enc.Append(nil, sub.peer.ser, &proto.Message{Type: proto.CodeSubscribe, Request: req,
		Dict: sub.opts(map[string]any{"get_retained": true}), URI: []byte("com.state")})
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan struct{})
	if err := e.execs[1].Execute(func() {
		<-published
		sub.sh.Receive(sub.sess, b)
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{v}, nil)
		pub.expect(proto.CodePublished)
	}
	close(published)
	if m := sub.expect(proto.CodeSubscribed); m.Request != req {
		t.Fatalf("SUBSCRIBED for %d, want %d", m.Request, req)
	}
	got := eventsOf(sub)
	want := []string{"v2 retained=true", "v1 retained=false", "v2 retained=false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a session subscribed before v1 and v2 were published got %q, want %q (superseded %d)", got, want, e.r.Stats().EventsSuperseded)
	}
	if n := e.r.Stats().EventsSuperseded; n != 0 {
		t.Fatalf("EventsSuperseded %d, want 0", n)
	}
	if gate, wins, marks, heldN := winsOf(sub, "com.state"); gate != 0 || wins != 0 || marks != 0 || heldN != 0 {
		t.Fatalf("gate %d, windows %d, marks %d, held %d; want none", gate, wins, marks, heldN)
	}
}

// The same on a mesh: a subscriber's get_retained SUBSCRIBE gathers the
// other nodes' retained events while the live ones arrive. Before, it
// opened a window that held v1 live during the gather and then dropped it
// as the retained copy's: the session, subscribed all along, got v1 only
// as a retained event. Now the live v1 goes out at once, and the retained
// copy after it.
func TestMeshRetainedResubscribeLosesLiveEvent(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	sub := es[1].join(proto.MsgPack)
	sub.subscribe("com.state", nil)
	mm.sync()
	mm.nodes[1].gatherHold.Store(true)
	sub.subscribe("com.state", map[string]any{"get_retained": true})
	pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{"v1"}, nil)
	pub.expect(proto.CodePublished)
	mm.sync()
	if got, want := eventsOf(sub), []string{"v1 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("during the gather the subscriber got %q, want %q", got, want)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	if got, want := eventsOf(sub), []string{"v1 retained=true"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the gather the subscriber got %q, want %q", got, want)
	}
	if n := mm.nodes[1].e.r.Stats().EventsSuperseded; n != 0 {
		t.Fatalf("EventsSuperseded %d, want 0", n)
	}
}

// A session that opened a window (its get_retained SUBSCRIBE made it a
// subscriber; on a mesh the gather runs) SUBSCRIBEs to the topic again,
// without get_retained, before the retained events come, as the HTTP
// gateway does when a second event stream of the principal opens; v1 is
// then published and retained. The window's marks would drop v1's live
// copy, published after the second SUBSCRIBE, which the gateway's other
// stream (given live events only) is owed: the window keeps none, and v1
// comes retained and live.
func TestMeshRetainedRepeatedWhilePending(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	sub := es[1].join(proto.MsgPack)
	mm.nodes[1].gatherHold.Store(true)
	id := sub.subscribe("com.state", map[string]any{"get_retained": true})
	if id2 := sub.subscribe("com.state", nil); id2 != id {
		t.Fatalf("second SUBSCRIBE: subscription %d, want %d", id2, id)
	}
	pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{"v1"}, nil)
	pub.expect(proto.CodePublished)
	mm.sync()
	if got := eventsOf(sub); len(got) != 0 {
		t.Fatalf("events before the retained ones: %q", got)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	if got, want := eventsOf(sub), []string{"v1 retained=true", "v1 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscriber got %q, want %q (superseded %d)", got, want, mm.nodes[1].e.r.Stats().EventsSuperseded)
	}
	if gate, wins, marks, heldN := winsOf(sub, "com.state"); gate != 0 || wins != 0 || marks != 0 || heldN != 0 {
		t.Fatalf("after: gate %d, windows %d, marks %d, held %d; want none", gate, wins, marks, heldN)
	}
}
