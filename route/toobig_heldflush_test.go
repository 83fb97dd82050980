package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The longest EVENT refused as too long during a fan-out (Shard.refusedLen,
// 5d684e1) belongs to that fan-out's publication. A get_retained window
// whose held events overflow sends them from inside the fan-out of the
// next publication (winAdmit, flushHeld): a held event refused there as
// too long must not count as the current publication's, whose much
// shorter EVENT another subscription's subscriber accepts.
func TestHeldEventRefusedDoesNotDropOthersEvent(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	// A retained event whose delivery takes a session's walk burst: the
	// next get_retained SUBSCRIBE waits its turn, its window pending
	// (TestHeldEventsShareOneCopy).
	fat := strings.Repeat("f", walkBurst*retainedBytesPerEntry)
	pub.publish("com.fat", map[string]any{"retain": true, "acknowledge": true}, []any{fat}, nil)
	pub.expect(proto.CodePublished)

	// A payload whose held copy nearly fills the window's bytes: the next
	// event, however small, makes the window send what it holds.
	big := strings.Repeat("x", maxWinHeld-eventOverhead-len("com.x")-16-4)
	bigArgs := raw(t, proto.JSON, []any{big})

	s := e.join(proto.JSON)
	// It accepts the payload but not the EVENT carrying it: refused by
	// its peer, as too long, when sent.
	s.peer.maxLen.Store(int64(len(bigArgs.B)))
	s.subscribe("com.fat", map[string]any{"get_retained": true})
	s.subscribe("com.other", map[string]any{"get_retained": true})
	s.subscribe("com.x", nil)
	s.subscribe("com.y", nil)
	var pending int
	s.exec.do(func() { pending = s.sess.winPending })
	if pending != 1 {
		t.Fatalf("%d windows pending, want 1", pending)
	}
	// A RawSocket client taking 1 KiB, with its own subscriptions matching
	// com.y (before and after S's in the fan-out's order).
	c := e.join(proto.JSON)
	c.peer.maxLen.Store(1 << 10)
	c.subscribe("com", map[string]any{"match": "prefix"})
	c.subscribe(".y", map[string]any{"match": "wildcard"})

	pub.send(&proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(nil), URI: []byte("com.x"), Args: bigArgs})
	e.sync()
	var held int
	s.exec.do(func() { held = s.sess.winHeldN })
	if held != 1 {
		t.Fatalf("%d events held, want 1", held)
	}
	tooBig := s.peer.tooBig.Load()
	pub.publish("com.y", nil, []any{"small"}, nil)
	e.sync()
	if got := s.peer.tooBig.Load() - tooBig; got != 1 {
		t.Fatalf("the held event: %d refused as too long by its subscriber, want 1", got)
	}
	if n := len(c.peer.in); n != 2 {
		t.Fatalf("a 1 KiB subscriber got %d EVENTs of a small event, one per subscription, want 2 (%d refused by it as too long)", n, c.peer.tooBig.Load())
	}
	for i := 0; i < 2; i++ {
		m := c.expect(proto.CodeEvent)
		if a := argsOf(m); len(a) != 1 || a[0] != "small" {
			t.Fatalf("EVENT %d: args %v", i, a)
		}
	}
	c.quiet()
	if m := s.expect(proto.CodeEvent); len(argsOf(m)) != 1 || argsOf(m)[0] != "small" {
		t.Fatalf("the session with the window: %s", describe(m))
	}
}
