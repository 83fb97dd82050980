package route

import (
	"errors"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// When the mesh cannot ask the other nodes (a node has its 1,024 gathers
// in flight, or its outbound queue is full), a meta call for the whole
// realm answered with this node's part only: wamp.session.count too low,
// wamp.session.kill of a session on another node "no such session". It
// now fails with wamp.error.unavailable, which a caller can retry.
func TestMeshMetaWhenGatherRefused(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := es[0].join(proto.JSON), es[1].join(proto.JSON)
	mm.sync()
	busy := errors.New("edge: busy")
	mm.nodes[0].gatherErr.Store(&busy)
	for _, c := range []struct {
		proc string
		args []any
	}{
		{"wamp.session.count", nil},
		{"wamp.session.list", nil},
		{"wamp.session.get", []any{b.id}},
		{"wamp.session.kill", []any{b.id}},
	} {
		req := a.call(c.proc, nil, c.args, nil)
		mm.sync()
		m := a.recv()
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
			t.Errorf("%s with the mesh busy: got %v %s, want ERROR %s", c.proc, m.Type, describe(m), proto.URIUnavailable)
		}
	}
	b.quiet() // not killed
	mm.nodes[0].gatherErr.Store(nil)
	req := a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != int64(2) {
		t.Fatalf("count once the mesh answers: %s", describe(m))
	}
}
