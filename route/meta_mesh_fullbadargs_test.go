package route

import (
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A meta call with bad arguments from a session whose gathers were full
// (maxSessionGathers waiting for a slow node, maxSessionGatherQueue
// queued) was refused wamp.error.unavailable, "try again": the bound was
// checked before the arguments, and a retry got the same until the
// gathers drained, then invalid_argument. The arguments are checked first,
// as on one node.
func TestMeshMetaBadArgsRefusedForThemWhenGathersFull(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	mm.nodes[1].dispatch(func() { <-gate }) // node B answers nothing until released
	a := es[0].join(proto.JSON)
	const filled = maxSessionGathers + maxSessionGatherQueue
	for i := 0; i < filled; i++ {
		a.call("wamp.session.count", nil, nil, nil)
	}
	// Full now: a good call is refused for the bound.
	a.expectError(proto.CodeCall, a.call("wamp.session.count", nil, nil, nil), proto.URIUnavailable)
	for _, c := range []struct {
		proc   string
		args   []any
		kwargs map[string]any
		uri    string
	}{
		{"wamp.session.count", []any{"x"}, nil, proto.URIInvalidArgument},
		{"wamp.session.list", []any{5}, nil, proto.URIInvalidArgument},
		{"wamp.registration.count_callees", []any{0}, nil, proto.URIInvalidArgument},
		{"wamp.registration.list_callees", []any{"x"}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.list_subscribers", []any{"x"}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.count_subscribers", []any{-1}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.get", []any{uint64(proto.MaxID) + 1}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.lookup", []any{5}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.lookup", []any{"com.t", map[string]any{"match": "foo"}}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.match", []any{5}, nil, proto.URIInvalidArgument},
		{"wamp.subscription.list", []any{7}, nil, proto.URIInvalidArgument},
		{"wamp.session.kill_by_authid", []any{5}, nil, proto.URIInvalidArgument},
		{"wamp.session.kill_by_authrole", []any{"r"}, map[string]any{"message": 5}, proto.URIInvalidArgument},
		{"wamp.session.kill_all", nil, map[string]any{"reason": "not a uri"}, proto.URIInvalidURI},
	} {
		req := a.call(c.proc, nil, c.args, c.kwargs)
		if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != c.uri {
			t.Errorf("%s %v %v with the session's gathers full: got %v %s, want ERROR %s", c.proc, c.args, c.kwargs, m.Type, describe(m), c.uri)
		}
	}
	release()
	for i := 0; i < filled; i++ {
		a.expect(proto.CodeResult)
	}
}

// Likewise on one node: a session with its meta walk turns full (in walk
// debt, maxMetaWalkWait calls waiting) was answered wamp.error.unavailable
// for a walking meta call with bad arguments.
func TestMetaBadArgsRefusedForThemWhenWalkTurnsFull(t *testing.T) {
	e := newEnv(t, 1, nil)
	a := e.join(proto.JSON)
	a.exec.do(func() {
		a.sess.walks.refill(e.r.now())
		a.sess.walks.tokens = -10 * walkRate
	})
	for i := 0; i < maxMetaWalkWait; i++ {
		a.call("wamp.session.list", nil, nil, nil)
	}
	a.expectError(proto.CodeCall, a.call("wamp.session.list", nil, nil, nil), proto.URIUnavailable)
	a.expectError(proto.CodeCall, a.call("wamp.session.list", nil, []any{5}, nil), proto.URIInvalidArgument)
	a.expectError(proto.CodeCall, a.call("wamp.session.kill_all", nil, nil, map[string]any{"reason": "not a uri"}), proto.URIInvalidURI)
}

// The two walking procedures that act on one callee or subscriber
// (remove_callee, remove_subscriber: metaVisits) were left out of
// metaArgsErr: with the session's walk turns full, remove_callee("x", 1)
// or a reason that is no URI was answered wamp.error.unavailable, "retry
// later", where its arguments are refused as they are with turns free.
func TestMetaRemoveBadArgsRefusedForThemWhenWalkTurnsFull(t *testing.T) {
	e := newEnv(t, 1, nil)
	a := e.join(proto.JSON)
	a.exec.do(func() {
		a.sess.walks.refill(e.r.now())
		a.sess.walks.tokens = -10 * walkRate
	})
	for i := 0; i < maxMetaWalkWait; i++ {
		a.call("wamp.session.list", nil, nil, nil)
	}
	a.expectError(proto.CodeCall, a.call("wamp.registration.remove_callee", nil, []any{1, 2}, nil), proto.URIUnavailable)
	for _, c := range []struct {
		proc string
		args []any
		uri  string
	}{
		{"wamp.registration.remove_callee", []any{"x", 1}, proto.URIInvalidArgument},
		{"wamp.registration.remove_callee", []any{1}, proto.URIInvalidArgument},
		{"wamp.registration.remove_callee", []any{1, 2, "not a uri"}, proto.URIInvalidURI},
		{"wamp.subscription.remove_subscriber", []any{1, -2}, proto.URIInvalidArgument},
		{"wamp.subscription.remove_subscriber", []any{1, 2, 5}, proto.URIInvalidArgument},
	} {
		req := a.call(c.proc, nil, c.args, nil)
		if m := a.recv(); m.Type != proto.CodeError || m.Request != req || string(m.URI) != c.uri {
			t.Errorf("%s %v with the session's walk turns full: got %v %s, want ERROR %s", c.proc, c.args, m.Type, describe(m), c.uri)
		}
	}
}
