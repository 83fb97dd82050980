package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// An event a get_retained window held for a subscription the session
// then left is dropped (flushHeld), also when the session subscribed to
// it again meanwhile and got the same subscription (another session kept
// it): the event was for the subscriber that left, published before the
// new SUBSCRIBED, and arrived after its UNSUBSCRIBED.
func TestHeldEventNotForResubscriber(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	fat := strings.Repeat("f", walkBurst*retainedBytesPerEntry)
	pub.publish("com.fat", map[string]any{"retain": true, "acknowledge": true}, []any{fat}, nil)
	pub.expect(proto.CodePublished)
	other := e.join(proto.JSON)
	bid := other.subscribe("com.b", nil) // keeps com.b's subscription
	s := e.join(proto.JSON)
	if id := s.subscribe("com.b", nil); id != bid {
		t.Fatalf("subscription %d, want %d", id, bid)
	}
	s.subscribe("com.fat", map[string]any{"get_retained": true})
	if m := s.expect(proto.CodeEvent); !m.Opt.Bool(proto.KeyRetained, false) {
		t.Fatalf("got %s", describe(m))
	}
	// Its walk budget spent: this window waits, holding the live events.
	s.subscribe("com.a", map[string]any{"get_retained": true})
	pub.publish("com.b", nil, []any{"before"}, nil)
	e.sync()
	if m := other.expect(proto.CodeEvent); argsOf(m)[0] != "before" {
		t.Fatalf("other got %s", describe(m))
	}
	s.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: s.nextReq(), ID: bid})
	s.expect(proto.CodeUnsubscribed)
	if id := s.subscribe("com.b", nil); id != bid {
		t.Fatalf("subscription %d again, want %d", id, bid)
	}
	pub.publish("com.b", nil, []any{"after"}, nil)
	e.sync()
	other.expect(proto.CodeEvent)
	var got []any
	for range 50 {
		e.advance(200e6) // the window's turn
		select {
		case m := <-s.peer.in:
			if m.Type != proto.CodeEvent {
				t.Fatalf("got %v %s", m.Type, describe(m))
			}
			got = append(got, argsOf(m)[0])
		default:
		}
		if len(got) > 0 && got[len(got)-1] == "after" {
			break
		}
	}
	if len(got) != 1 || got[0] != "after" {
		t.Fatalf("after UNSUBSCRIBED and SUBSCRIBED again the session got %v; want [after] (\"before\" was held for the subscriber that left)", got)
	}
}
