package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestHelloWithoutClientRoleAborted: a HELLO whose roles name no client
// role (caller, callee, publisher, subscriber, each a dictionary of its
// features) is answered ABORT wamp.error.protocol_violation saying so.
// [WAMP Basic Profile, Client: Roles]: "A Client can support any
// combination of the above roles but must support at least one role."
// Before, {"roles": {"dealer": {}}} and the like got WELCOME: a session
// that announced nothing it would do. Unknown roles beside a client role
// are still taken (and ignored), as later versions of the spec may add
// some.
func TestHelloWithoutClientRoleAborted(t *testing.T) {
	const want = "HELLO.Details.roles: must announce at least one client role (caller, callee, publisher or subscriber) as a dictionary"
	for _, roles := range []map[string]any{
		{"dealer": map[string]any{}},
		{"broker": map[string]any{}, "x_custom": map[string]any{"features": map[string]any{}}},
		{"caller": true},
		{"subscriber": nil, "publisher": "yes"},
	} {
		e := newEnv(t, 1, nil)
		c := e.connect(proto.JSON)
		c.hello("realm1", roles, nil)
		m := c.recv()
		if m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation || m.Opt.String(proto.KeyMessage) != want {
			t.Fatalf("HELLO with roles %v: got %s, want ABORT %s %q", roles, describe(m), proto.URIProtocolViolation, want)
		}
		e.sync()
		if !c.peer.closed.Load() {
			t.Fatalf("HELLO with roles %v: transport not closed after ABORT", roles)
		}
	}
	// One client role is enough, whatever else is there.
	for _, roles := range []map[string]any{
		{"subscriber": map[string]any{}},
		{"callee": map[string]any{}, "dealer": map[string]any{}, "x_custom": 1},
	} {
		e := newEnv(t, 1, nil)
		c := e.connect(proto.MsgPack)
		c.hello("realm1", roles, nil)
		if m := c.recv(); m.Type != proto.CodeWelcome {
			t.Fatalf("HELLO with roles %v: got %s, want WELCOME", roles, describe(m))
		}
	}
}

// TestReceiveProgressWithoutAnnouncedFeature: a caller that sets
// CALL.Options.receive_progress without announcing
// progressive_call_results gets the progressive results. The option is the
// caller's own statement that it takes them ("A Caller indicates its
// willingness to receive progressive results by setting
// CALL.Options.receive_progress|bool := true"); the spec makes an
// unannounced progressive call invocation a protocol error, not this, and
// Crossbar.io forwards receive_progress without looking at the caller's
// features. Kept deliberately (README, Dealer).
func TestReceiveProgressWithoutAnnouncedFeature(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.join(proto.JSON)
	callee.register("com.p", nil)
	caller := e.connect(proto.MsgPack)
	caller.hello("realm1", map[string]any{"caller": map[string]any{}}, nil)
	caller.expect(proto.CodeWelcome)
	req := caller.call("com.p", map[string]any{"receive_progress": true}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if !inv.Opt.Bool(proto.KeyReceiveProgress, false) {
		t.Fatal("INVOCATION without receive_progress")
	}
	callee.yield(inv.Request, map[string]any{"progress": true}, []any{1})
	callee.yield(inv.Request, nil, []any{2})
	m := caller.expect(proto.CodeResult)
	if m.Request != req || !m.Opt.Bool(proto.KeyProgress, false) {
		t.Fatalf("first RESULT %s, want a progressive one", describe(m))
	}
	if m = caller.expect(proto.CodeResult); m.Request != req || m.Opt.Bool(proto.KeyProgress, false) {
		t.Fatalf("second RESULT %s, want the final one", describe(m))
	}
}
