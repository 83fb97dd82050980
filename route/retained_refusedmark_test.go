package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A retained event whose EVENT the subscriber refused (slow: its queue
// past its mark) keeps a mark that still drops its publisher's older
// events, but not the live copy of that event when it comes after the
// subscriber's queue drained: the subscriber has not had it. Before, the
// mark dropped that copy too (counted superseded), and the subscriber
// never got the event (as TestRetainedNotTwiceAcrossShards: the
// subscriber's shard runs the get_retained SUBSCRIBE before the live
// tasks the publisher's shard queued for it).
func TestRetainedRefusedLiveCopyDelivered(t *testing.T) {
	e := newEnv(t, 2, nil)
	pub := e.joinOn(0, proto.JSON)
	other := e.joinOn(1, proto.JSON)
	sub := e.joinOn(1, proto.MsgPack)
	other.subscribe("com.state", nil)

	req := sub.nextReq()
	b, err := sub.enc.Append(nil, sub.peer.ser, &proto.Message{Type: proto.CodeSubscribe, Request: req,
		Dict: sub.opts(map[string]any{"get_retained": true}), URI: []byte("com.state")})
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan struct{})
	if err := e.execs[1].Execute(func() {
		<-published
		sub.peer.slow.Store(true) // its queue is past its mark: the retained EVENT refused
		sub.sh.Receive(sub.sess, b)
		sub.peer.slow.Store(false) // drained before the live events come
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
	// SUBSCRIBED goes out before the retained EVENT is tried (in the same
	// turn of the subscriber's shard): that turn is over first.
	e.execs[1].do(func() {})
	if n := sub.peer.dropped.Load(); n != 1 {
		t.Fatalf("%d EVENTs refused, want the retained one", n)
	}
	pub.publish("com.state", map[string]any{"acknowledge": true}, []any{"v3"}, nil)
	pub.expect(proto.CodePublished)
	// v1, older than the retained v2, is still not delivered; v2 is,
	// live, once.
	if got, want := eventsOf(sub), []string{"v2 retained=false", "v3 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscriber got %q, want %q", got, want)
	}
	if n := e.r.Stats().EventsSuperseded; n != 1 {
		t.Fatalf("EventsSuperseded %d, want 1 (v1)", n)
	}
}
