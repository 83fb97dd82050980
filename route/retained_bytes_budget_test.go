package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained SUBSCRIBE to an exact topic sends the topic's retained
// event, whatever its size, for a message of a few dozen bytes, and a
// session may repeat it (a subscriber already is sent the retained event
// again each time): each is an encoding of the whole event on the loop,
// transcoded to the subscriber's serializer, whether the subscriber reads
// it or not. A client that does not read sent 50 SUBSCRIBEs of 40 bytes
// for a 4 MiB retained event and had the loop encode 200 MiB (187 ms,
// JSON to MsgPack), every other session of the loop waiting; an exact
// subscription was not charged in the session's walk budget at all. The retained events a session is sent are now charged in it by
// their bytes (retainedBytesPerEntry): past its burst they wait their turn
// as a pattern's scan does, and are delivered later, none lost.
func TestRetainedDeliveryBytesBudgeted(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	pub.publish("com.big", map[string]any{"retain": true, "acknowledge": true}, []any{strings.Repeat("x", 4<<20)}, nil)
	pub.expect(proto.CodePublished)

	// A subscriber that does not read: every EVENT is refused as slow,
	// after it was encoded.
	sub := e.join(proto.MsgPack)
	sub.peer.slow.Store(true)
	const n = 50
	start := time.Now()
	for i := 0; i < n; i++ {
		sub.sendAsync(&proto.Message{Type: proto.CodeSubscribe, Request: sub.nextReq(),
			Dict: sub.opts(map[string]any{"get_retained": true}), URI: []byte("com.big")})
	}
	e.sync()
	took := time.Since(start)
	for i := 0; i < n; i++ {
		sub.expect(proto.CodeSubscribed)
	}
	sent := sub.peer.dropped.Load()
	t.Logf("%d get_retained SUBSCRIBEs of a 4 MiB retained event: %d encoded and sent, %v", n, sent, took)
	if sent > 2 {
		t.Fatalf("%d get_retained SUBSCRIBEs of a 4 MiB retained event had it encoded and sent %d times at once, want at most 2 (the rest waiting for the session's budget)", n, sent)
	}

	// Those waiting are delivered as the budget refills, in turn: none is
	// lost. A reader of a 256 KiB retained event gets its first four at
	// once (the burst), then the rest.
	pub.publish("com.mid", map[string]any{"retain": true, "acknowledge": true}, []any{strings.Repeat("y", 256<<10)}, nil)
	pub.expect(proto.CodePublished)
	rd := e.join(proto.JSON)
	const k = 8
	for i := 0; i < k; i++ {
		rd.sendAsync(&proto.Message{Type: proto.CodeSubscribe, Request: rd.nextReq(),
			Dict: rd.opts(map[string]any{"get_retained": true}), URI: []byte("com.mid")})
	}
	e.sync()
	events := 0
	for got := 0; got < k; {
		select {
		case m := <-rd.peer.in:
			switch m.Type {
			case proto.CodeSubscribed:
				got++
			case proto.CodeEvent:
				events++
			default:
				t.Fatalf("got %v %s", m.Type, describe(m))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d SUBSCRIBED", got, k)
		}
	}
	drain := func() {
		for {
			select {
			case m := <-rd.peer.in:
				if m.Type != proto.CodeEvent {
					t.Fatalf("got %v %s", m.Type, describe(m))
				}
				events++
			case <-time.After(20 * time.Millisecond):
				return
			}
		}
	}
	drain()
	if events == 0 || events >= k {
		t.Fatalf("%d retained events of 256 KiB delivered at once for %d SUBSCRIBEs, want the burst's (1 MiB) and the rest later", events, k)
	}
	for i := 0; i < 10 && events < k; i++ {
		e.advance(time.Second)
		drain()
	}
	if events != k {
		t.Fatalf("%d retained events delivered for %d get_retained SUBSCRIBEs once the budget refilled, want %d", events, k, k)
	}
}
