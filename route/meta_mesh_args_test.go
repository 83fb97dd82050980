package route

import (
	"math/big"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetaArgsNotForwardableRefused: a meta call answered for the whole
// mesh whose arguments cannot be put in the query to the other nodes (an
// integer beyond float64's range, which a JSON caller may send and MsgPack,
// the mesh's encoding, cannot carry) is refused with
// wamp.error.invalid_argument before it does anything. It used to be
// answered with this node's part alone, as if it were the mesh's: a count
// without the other nodes' sessions, unmarked, and a kill_all that killed
// this node's sessions only and said so as if it were all of them.
func TestMeshMetaArgsNotForwardableRefused(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	local := es[0].join(proto.JSON)
	remote := []*tc{es[1].join(proto.JSON), es[1].join(proto.JSON)}
	mm.sync()
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(400), nil) // 1,329 bits: JSON carries it, MsgPack cannot

	req := a.call("wamp.session.count", nil, []any{nil, huge}, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
		t.Fatalf("wamp.session.count with an argument the mesh cannot carry: got %s, want ERROR %s (4 sessions in the mesh)", describe(m), proto.URIInvalidArgument)
	}
	req = a.call("wamp.session.kill_all", nil, nil, map[string]any{"reason": "com.example.bye", "x": huge})
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
		t.Fatalf("wamp.session.kill_all with a keyword argument the mesh cannot carry: got %s, want ERROR %s", describe(m), proto.URIInvalidArgument)
	}
	local.quiet() // not killed: refused before it did anything
	for _, r := range remote {
		r.quiet()
	}
	// The same calls without it are answered for the whole mesh.
	a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || argsOf(m)[0] != int64(4) {
		t.Fatalf("wamp.session.count: %s, want 4", describe(m))
	}
}
