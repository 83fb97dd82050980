package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A large EVENT is not encoded for a subscriber whose backlog is past its
// mark: its Send would drop it. Each subscription's EVENT is encoded
// apart (its id, and the topic for a pattern), so one PUBLISH of 8 MiB
// to a topic 256 stalled sessions each matched with a prefix of its own
// was encoded 256 times, about 0.75 s of the loop, every one dropped.
func TestStalledSubscribersNotEncodedFor(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	topic := "com.t." + strings.Repeat("x", 64)
	const n = 32
	var stalled []*tc
	for i := range n {
		c := e.join(proto.MsgPack)
		c.subscribe(topic[:len(topic)-i], map[string]any{"match": "prefix"})
		c.peer.stalled.Store(true)
		stalled = append(stalled, c)
	}
	reader := e.join(proto.MsgPack)
	rid := reader.subscribe("com.t.", map[string]any{"match": "prefix"})
	big := strings.Repeat("y", 1<<20)
	before := e.r.Stats().EventsDroppedSlowConsumer
	pub.publish(topic, nil, []any{big}, nil)
	e.sync()
	if m := reader.expect(proto.CodeEvent); m.ID != rid || argsOf(m)[0] != big {
		t.Fatalf("the reader got %s", describe(m))
	}
	var encoded int64
	for _, c := range stalled {
		encoded += c.peer.dropped.Load()
	}
	dropped := e.r.Stats().EventsDroppedSlowConsumer - before
	if encoded != 0 || dropped != n {
		t.Fatalf("one PUBLISH of 1 MiB to %d stalled subscribers: %d EVENTs encoded for them and refused, %d counted dropped; want 0 encoded, %d dropped", n, encoded, dropped, n)
	}
	// A small event still goes to Send, which judges it.
	pub.publish(topic, nil, []any{"small"}, nil)
	e.sync()
	reader.expect(proto.CodeEvent)
	encoded = 0
	for _, c := range stalled {
		encoded += c.peer.dropped.Load()
	}
	if encoded != n {
		t.Fatalf("a small event was offered to %d stalled subscribers, want %d", encoded, n)
	}
}

// Nor is a large EVENT encoded for a subscriber that accepts shorter
// messages than its payload (a RawSocket client's maximum), when the
// payload goes into it as it is: one PUBLISH of 8 MiB to 256 sessions
// accepting 512 bytes, each matching with a prefix of its own, held the
// loop 0.32 s for 256 encodings, each refused as too long.
func TestTooLongEventsNotEncodedFor(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	topic := "com.t." + strings.Repeat("x", 64)
	const n = 32
	var small []*tc
	for i := range n {
		c := e.join(proto.JSON)
		c.subscribe(topic[:len(topic)-i], map[string]any{"match": "prefix"})
		c.peer.maxLen.Store(4096)
		small = append(small, c)
	}
	reader := e.join(proto.JSON)
	rid := reader.subscribe("com.t.", map[string]any{"match": "prefix"})
	big := strings.Repeat("y", 1<<20)
	before := e.r.Stats().EventsDroppedTooBig
	pub.publish(topic, nil, []any{big}, nil)
	e.sync()
	if m := reader.expect(proto.CodeEvent); m.ID != rid || argsOf(m)[0] != big {
		t.Fatalf("the reader got %s", describe(m))
	}
	var encoded int64
	for _, c := range small {
		encoded += c.peer.tooBig.Load()
	}
	dropped := e.r.Stats().EventsDroppedTooBig - before
	if encoded != 0 || dropped != n {
		t.Fatalf("one PUBLISH of 1 MiB to %d subscribers accepting 4 KiB: %d EVENTs encoded for them and refused, %d counted too big; want 0 encoded, %d too big", n, encoded, dropped, n)
	}
	// One that fits is delivered.
	pub.publish(topic, nil, []any{"small"}, nil)
	e.sync()
	reader.expect(proto.CodeEvent)
	for _, c := range small {
		if m := c.expect(proto.CodeEvent); argsOf(m)[0] != "small" {
			t.Fatalf("got %s", describe(m))
		}
	}
}
