package route

import (
	"bytes"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A large event that grows past what its subscribers accept when converted
// for them (CBOR half floats to JSON: 180 KB become 1.38 MB, over their
// 1 MiB) is converted once per shard and serializer, not once per matching
// subscription: eight sessions, each with its own pattern matching the
// topic, had it converted eight times (each EVENT then refused too big),
// where the skip for one session's other subscriptions (refusedAt) does
// not reach. What the subscribers accept is below the first EVENT's
// length less what another subscription's EVENT may differ by (its id and
// the topic option). Each drop is still counted too_big.
func TestConvertedTooBigEventEncodedOnce(t *testing.T) {
	e := newEnv(t, 1, nil)
	pats := []struct{ uri, match string }{
		{"a.b.c", "exact"}, {"a", "prefix"}, {"a.b", "prefix"}, {"a..c", "wildcard"},
		{".b.c", "wildcard"}, {"..c", "wildcard"}, {"a.b.", "wildcard"}, {".b.", "wildcard"},
	}
	subs := make([]*tc, len(pats))
	for i, p := range pats {
		subs[i] = e.join(proto.JSON)
		subs[i].peer.maxLen.Store(1 << 20)
		subs[i].subscribe(p.uri, map[string]any{"match": p.match})
	}
	const n = 60_000
	args := append([]byte{0x99, n >> 8, n & 0xff}, bytes.Repeat([]byte{0xf9, 0x00, 0x03}, n)...)
	pub := e.join(proto.CBOR)
	req := pub.nextReq()
	before := e.r.Stats().EventsDroppedTooBig
	pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}),
		URI: []byte("a.b.c"), Args: proto.Raw{Ser: proto.CBOR, B: args}})
	if m := pub.recv(); m.Type != proto.CodePublished {
		t.Fatalf("publisher got %v %s", m.Type, describe(m))
	}
	e.sync()
	var refused int64
	for _, s := range subs {
		s.quiet()
		refused += s.peer.tooBig.Load()
	}
	if got := e.r.Stats().EventsDroppedTooBig - before; got != uint64(len(pats)) {
		t.Errorf("EventsDroppedTooBig rose by %d, want %d", got, len(pats))
	}
	if refused != 1 {
		t.Errorf("%d EVENTs converted and refused by their peers as too long, want 1 (the others dropped unconverted)", refused)
	}
	// A subscriber that accepts it still gets it.
	big := e.join(proto.JSON)
	big.subscribe("a.b", map[string]any{"match": "prefix"})
	pub.send(&proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(nil),
		URI: []byte("a.b.c"), Args: proto.Raw{Ser: proto.CBOR, B: args}})
	if m := big.expect(proto.CodeEvent); len(m.Args.B) < 1<<20 {
		t.Fatalf("the subscriber accepting it: %d bytes of args", len(m.Args.B))
	}
}
