package route

import (
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetaKillOwnSessionAnsweredHere: a wamp.session.kill of the
// caller's own session is refused wamp.error.no_such_session ("no other
// session", as the WAMP Session Meta API asks) by the caller's node
// alone: the session is here, so no other node can have it. The refusal
// used to be taken for "not here" and gathered from every other node: the
// caller waited for the slowest (up to gather_timeout) with one of its
// 16 gathers taken, and when the other nodes could not be asked (1,024
// gathers in flight, the outbound queue full) it was told
// wamp.error.unavailable, "try again", for a call whose answer was known.
func TestMeshMetaKillOwnSessionAnsweredHere(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a := es[0].join(proto.JSON)
	mm.sync()

	q0 := mm.nodes[0].queries.Load()
	req := a.call("wamp.session.kill", nil, []any{a.id}, nil)
	mm.sync()
	a.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	if n := mm.nodes[0].queries.Load() - q0; n != 0 {
		t.Fatalf("a kill of the caller's own session asked %d other nodes", n)
	}

	busy := errors.New("1024 gathers in flight")
	mm.nodes[0].gatherErr.Store(&busy)
	req = a.call("wamp.session.kill", nil, []any{a.id}, nil)
	mm.sync()
	a.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	mm.nodes[0].gatherErr.Store(nil)

	// The other nodes slow (their answers held): answered at once.
	mm.nodes[0].gatherHold.Store(true)
	defer mm.nodes[0].releaseGathers()
	req = a.call("wamp.session.kill", nil, []any{a.id}, nil)
	select {
	case m := <-a.peer.in:
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URINoSuchSession {
			t.Fatalf("a kill of the caller's own session while the other nodes are slow: %v %s", m.Type, describe(m))
		}
	case <-time.After(time.Second):
		t.Fatalf("a kill of the caller's own session: no answer within 1 s while the other nodes' answers are held (%d gathers)", mm.nodes[0].gathers.Load())
	}
}
