package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// An EVENT that cannot be converted to a subscriber's serializer (here a
// JSON integer of 400 digits, beyond float64, which MsgPack cannot carry,
// while JSON subscribers get it as it is; a JSON binary string with broken
// base64, then an integer of 3,000 digits, were the examples until the
// JSON reader refused those) is dropped for the
// subscribers of that serializer,
// and counted under its own reason. The conversion is tried once per
// subscription and serializer, like a successful one: a publisher must
// not make the shard convert a large payload once per subscriber.
func TestUnconvertibleEventTriedOnce(t *testing.T) {
	e := newEnv(t, 1, nil)
	const n = 50
	subs := make([]*tc, n)
	for i := range subs {
		subs[i] = e.join(proto.MsgPack)
		subs[i].subscribe("com.t", nil)
	}
	js := e.join(proto.JSON)
	js.subscribe("com.t", nil)
	var tries int
	testHookEventEncodeFailed = func() { tries++ }
	defer func() { testHookEventEncodeFailed = nil }()
	pub := e.join(proto.JSON)
	req := pub.nextReq()
	big := `"` + strings.Repeat("a", 1<<20) + `"`
	pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
		Args: proto.Raw{Ser: proto.JSON, B: []byte(`[` + big + `,1` + strings.Repeat("0", 399) + `]`)}})
	if m := pub.recv(); m.Type != proto.CodePublished {
		t.Fatalf("publisher got %v %s", m.Type, describe(m))
	}
	if m := js.expect(proto.CodeEvent); len(m.Args.B) < 1<<20 {
		t.Fatalf("the JSON subscriber's EVENT: %d bytes of args", len(m.Args.B))
	}
	e.sync()
	for _, s := range subs {
		s.quiet()
	}
	if tries != 1 {
		t.Errorf("the EVENT's conversion to MsgPack failed %d times for %d MsgPack subscribers of one subscription, want once", tries, n)
	}
	if got := e.r.Stats().EventsDroppedNotConvertible; got != n {
		t.Errorf("EventsDroppedNotConvertible = %d, want %d", got, n)
	}
}
