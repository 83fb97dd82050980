package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session's on_join reaches a subscriber of its loop before the
// session's first event even when a meta event another loop posted to
// this one (a session of that loop joining) still waits in its mailbox:
// the on_join was then posted behind it, and the PUBLISH read in the same
// round of the loop, delivered inline, overtook both.
func TestOnJoinBeforeFirstEventWithMetaEventsPosted(t *testing.T) {
	e := newEnv(t, 2, nil)
	s := e.connectOn(0, proto.MsgPack)
	s.hello("realm1", allFeatures, nil)
	s.id = s.expect(proto.CodeWelcome).ID
	onJoin := s.subscribe("wamp.session.on_join", nil)
	topic := s.subscribe("com.t", nil)
	enc := func(c *tc, m *proto.Message) []byte {
		b, err := c.enc.Append(nil, c.peer.ser, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d, err := proto.EncodeValue(proto.JSON, map[string]any{"roles": allFeatures})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		y := e.connectOn(1, proto.JSON) // joins on the other loop
		x := e.connectOn(0, proto.JSON)
		helloY := enc(y, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: d})
		hello := enc(x, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: d})
		pub := enc(x, &proto.Message{Type: proto.CodePublish, Request: 1, URI: []byte("com.t"),
			Dict: x.opts(map[string]any{"disclose_me": true}), Args: raw(t, proto.JSON, []any{round})})
		x.exec.do(func() {
			// y's on_join is posted to this loop while it is busy
			// reading x's HELLO and PUBLISH (in one round).
			y.exec.do(func() { y.sh.Receive(y.sess, helloY) })
			x.sh.Receive(x.sess, hello)
			x.sh.Receive(x.sess, pub)
		})
		e.sync()
		y.expect(proto.CodeWelcome)
		x.expect(proto.CodeWelcome)
		var got []*proto.Message
		for range 3 {
			got = append(got, s.expect(proto.CodeEvent))
		}
		if got[0].ID != onJoin || got[1].ID != onJoin || got[2].ID != topic {
			t.Fatalf("round %d: want on_join (%d) of y, on_join of x, then x's event (%d); got %s, %s, %s",
				round, onJoin, topic, describe(got[0]), describe(got[1]), describe(got[2]))
		}
		x.goodbye()
		y.goodbye()
		e.sync()
	}
	s.quiet()
}
