package route

import (
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetaSessionHereAnsweredHere: on a mesh, wamp.session.get and
// wamp.session.kill of a session of this node are answered by this node
// alone, as the removal procedures are: session ids are unique in the
// mesh, so no other node can add to the answer. They used to ask every
// other node all the same: when the mesh could not be asked (1,024 gathers
// in flight, the outbound queue full) the caller got wamp.error.unavailable
// "try again" for a get it could have had, and for a kill that had been
// done (the retry then got no_such_session); otherwise the answer waited
// for the slowest node, up to gather_timeout, and took one of the session's
// 16 gathers.
func TestMeshMetaSessionHereAnsweredHere(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a := es[0].join(proto.JSON)
	v := es[0].join(proto.JSON)
	b := es[1].join(proto.JSON)
	mm.sync()
	busy := errors.New("1024 gathers in flight")
	mm.nodes[0].gatherErr.Store(&busy)

	req := a.call("wamp.session.get", nil, []any{v.id}, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0].(map[string]any)["session"] != int64(v.id) {
		t.Fatalf("wamp.session.get of a session of this node while the mesh cannot be asked: %s", describe(m))
	}
	req = a.call("wamp.session.kill", nil, []any{v.id}, nil)
	mm.sync()
	if g := v.expect(proto.CodeGoodbye); string(g.URI) != proto.CloseNormal {
		t.Fatalf("victim got GOODBYE %s", g.URI)
	}
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("wamp.session.kill of a session of this node, done, while the mesh cannot be asked: %s, want RESULT", describe(m))
	}
	// A session of another node still needs the mesh.
	req = a.call("wamp.session.get", nil, []any{b.id}, nil)
	mm.sync()
	a.expectError(proto.CodeCall, req, proto.URIUnavailable)

	// With the mesh askable but slow (its gathers held), a session here
	// is answered at once, without taking a gather.
	mm.nodes[0].gatherErr.Store(nil)
	w := es[0].join(proto.JSON)
	mm.nodes[0].gatherHold.Store(true)
	defer mm.nodes[0].releaseGathers()
	req = a.call("wamp.session.get", nil, []any{w.id}, nil)
	select {
	case m := <-a.peer.in:
		if m.Type != proto.CodeResult || m.Request != req {
			t.Fatalf("wamp.session.get of a session here while the other nodes are slow: %s", describe(m))
		}
	case <-time.After(time.Second):
		t.Fatalf("wamp.session.get of a session here: no answer within 1 s while the other nodes' answers are held (%d gathers)", mm.nodes[0].gathers.Load())
	}
	if n := mm.nodes[0].gathers.Load(); n != 0 {
		t.Fatalf("%d gathers for a session of this node", n)
	}
}
