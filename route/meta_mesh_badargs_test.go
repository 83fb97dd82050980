package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetaBadArgsNotGathered: a meta call answered for the whole mesh
// whose arguments this node refuses (wamp.error.invalid_argument or
// invalid_uri: the same on every node) is answered at once, without asking
// the other nodes. Before, it was gathered from every node all the same:
// each node decoded the query and answered the same error, and the caller
// waited for the slowest, using one of its gathers (and of the node's
// queue), for an answer this node had.
func TestMeshMetaBadArgsNotGathered(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a := es[0].join(proto.JSON)
	mm.sync()
	for _, c := range []struct {
		proc   string
		args   []any
		kwargs map[string]any
		uri    string
	}{
		{"wamp.registration.count_callees", []any{0}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.list_subscribers", []any{"x"}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.get", []any{uint64(proto.MaxID) + 1}, nil, proto.URIInvalidArgument},
		{"wamp.session.kill_by_authid", []any{5}, nil, proto.URIInvalidArgument},
		{"wamp.session.count", []any{"x"}, nil, proto.URIInvalidArgument},
		{"wamp.session.kill_all", nil, map[string]any{"reason": "not a uri"}, proto.URIInvalidURI},
	} {
		q0 := mm.nodes[0].queries.Load()
		req := a.call(c.proc, nil, c.args, c.kwargs)
		mm.sync()
		if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != c.uri {
			t.Fatalf("%s%v: got %v %s, want ERROR %s", c.proc, c.args, m.Type, describe(m), c.uri)
		}
		if q := mm.nodes[0].queries.Load() - q0; q != 0 {
			t.Errorf("%s%v %v: refused here, yet %d other nodes were asked", c.proc, c.args, c.kwargs, q)
		}
	}
	// A good call is still gathered.
	q0 := mm.nodes[0].queries.Load()
	a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	a.expect(proto.CodeResult)
	if q := mm.nodes[0].queries.Load() - q0; q != 2 {
		t.Fatalf("wamp.session.count asked %d other nodes, want 2", q)
	}
}
