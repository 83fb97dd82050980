package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session's on_join reaches a subscriber of its loop before the
// session's first event. Meta events to the publishing shard's own
// subscribers went through its mailbox (to keep them behind meta events
// other shards had posted there), while the session's PUBLISH is delivered
// to them inline: a client whose PUBLISH was read in the loop's round of
// its HELLO (sent right behind it, or read before the loop ran its
// mailbox, as a parking loop does, which looks at its sockets first)
// reached them before it had joined, as far as they could tell: an event
// of an unknown publisher (and the same for a CALL to a callee of that
// loop watching on_join). Meta events to the own shard are now delivered
// inline when none posted there earlier is waiting (Shard.metaPosted),
// still in queue order.
func TestOnJoinBeforeTheSessionsFirstEventOnItsLoop(t *testing.T) {
	for _, shards := range []int{1, 2} {
		e := newEnv(t, shards, nil)
		s := e.connectOn(0, proto.MsgPack)
		s.hello("realm1", allFeatures, nil)
		s.id = s.expect(proto.CodeWelcome).ID
		onJoin := s.subscribe("wamp.session.on_join", nil)
		topic := s.subscribe("com.t", nil)
		for round := range 20 {
			x := e.connectOn(0, proto.JSON)
			d, err := proto.EncodeValue(proto.JSON, map[string]any{"roles": allFeatures})
			if err != nil {
				t.Fatal(err)
			}
			hello, err := x.enc.Append(nil, proto.JSON, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: d})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := x.enc.Append(nil, proto.JSON, &proto.Message{Type: proto.CodePublish, Request: 1, URI: []byte("com.t"),
				Dict: x.opts(map[string]any{"disclose_me": true}), Args: raw(t, proto.JSON, []any{round})})
			if err != nil {
				t.Fatal(err)
			}
			// Both in one round of the loop: the PUBLISH read before the
			// loop turns to its mailbox.
			x.exec.do(func() { x.sh.Receive(x.sess, hello); x.sh.Receive(x.sess, pub) })
			e.sync()
			first, second := s.expect(proto.CodeEvent), s.expect(proto.CodeEvent)
			if first.ID != onJoin || second.ID != topic {
				t.Fatalf("%d shards, round %d: the subscriber got the new session's event (subscription %d) before its on_join (%d): %s, then %s",
					shards, round, topic, onJoin, describe(first), describe(second))
			}
			x.expect(proto.CodeWelcome)
			x.goodbye()
		}
		s.quiet()
	}
}
