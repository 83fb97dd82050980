package route

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshMetaSessionOfOtherRealmAnsweredHere: the meta procedures acting
// on one session (meshOwned: wamp.session.get and kill, remove_callee,
// remove_subscriber) of a session of this node in another realm are
// refused wamp.error.no_such_session by this node alone: the session is
// here, so no other node can have it. The refusal used to be taken for
// "not here" and gathered from every other node (a round trip, one of the
// caller's 16 gathers), and when the other nodes could not be asked the
// caller was told wamp.error.unavailable for a call whose answer was
// known. The answer is the one an unknown id gets, so that it tells
// nothing of the other realm, and the session is left alone.
func TestMeshMetaSessionOfOtherRealmAnsweredHere(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a := es[0].join(proto.JSON)
	v := es[0].connect(proto.JSON)
	v.hello("realm2", allFeatures, nil)
	v.id = v.expect(proto.CodeWelcome).ID
	mm.sync()

	// What an unknown id gets, gathered from every node, its id put back
	// as %d.
	const unknown = 4503599627370495
	argsFor := func(proc string, id uint64) []any {
		if proc == "wamp.registration.remove_callee" || proc == "wamp.subscription.remove_subscriber" {
			return []any{1, id}
		}
		return []any{id}
	}
	answer := func(proc string, id uint64) (string, int64) {
		t.Helper()
		q0 := mm.nodes[0].queries.Load()
		req := a.call(proc, nil, argsFor(proc, id), nil)
		mm.sync()
		m := a.expectError(proto.CodeCall, req, proto.URINoSuchSession)
		return strings.ReplaceAll(fmt.Sprint(argsOf(m)), strconv.FormatUint(id, 10), "%d"), mm.nodes[0].queries.Load() - q0
	}
	busy := errors.New("1024 gathers in flight")
	for _, proc := range []string{"wamp.session.get", "wamp.session.kill", "wamp.registration.remove_callee", "wamp.subscription.remove_subscriber"} {
		want, asked := answer(proc, unknown)
		if asked == 0 {
			t.Fatalf("%s of an unknown id asked no other node", proc)
		}
		got, asked := answer(proc, v.id)
		if asked != 0 {
			t.Errorf("%s of a session of this node in another realm asked %d other nodes", proc, asked)
		}
		if got != want {
			t.Errorf("%s of a session of another realm answered %s, an unknown id %s", proc, got, want)
		}
		// The other nodes cannot be asked: answered all the same.
		mm.nodes[0].gatherErr.Store(&busy)
		req := a.call(proc, nil, argsFor(proc, v.id), nil)
		mm.sync()
		a.expectError(proto.CodeCall, req, proto.URINoSuchSession)
		mm.nodes[0].gatherErr.Store(nil)
	}
	// v is still there.
	req := v.call("wamp.session.get", nil, []any{v.id}, nil)
	mm.sync()
	if m := v.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("the other realm's session: %v %s", m.Type, describe(m))
	}
}
