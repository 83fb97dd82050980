package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshSubscriptionMatchBadArgument: on a mesh, wamp.subscription.match
// without a topic URI is refused with wamp.error.invalid_argument, as on
// one node. Its combiner (combineUnionIDs) ignored the errors every node
// answered and made a union of no lists: RESULT [null], "no subscription
// matches", for a call that named no topic.
func TestMeshSubscriptionMatchBadArgument(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	a.subscribe("com.a", nil)
	es[1].join(proto.JSON).subscribe("com.a", nil)
	mm.sync()
	for _, args := range [][]any{nil, {nil}, {int64(12345)}, {[]any{"com.a"}}} {
		req := a.call("wamp.subscription.match", nil, args, nil)
		mm.sync()
		if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
			t.Fatalf("wamp.subscription.match %v on a mesh: %s, want ERROR %s (as on one node)", args, describe(m), proto.URIInvalidArgument)
		}
	}
	// A topic is matched on every node; one nobody subscribed to is null.
	if v := a.callMeta("wamp.subscription.match", []any{"com.a"}, nil); len(v.([]any)) != 1 {
		t.Fatalf("wamp.subscription.match com.a: %v", v)
	}
	if v := a.callMeta("wamp.subscription.match", []any{"com.b"}, nil); v != nil {
		t.Fatalf("wamp.subscription.match com.b: %v, want null", v)
	}
}
