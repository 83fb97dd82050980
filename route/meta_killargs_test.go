package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestKillReasonByPosition: Crossbar.io's kill procedures are Python
// functions, kill(session_id, reason, message), kill_by_authid(authid,
// reason, message), kill_by_authrole(authrole, reason, message), so a
// client may give the reason and message by position. The router read
// them by keyword only and ignored positional ones, silently: the session
// was ended with wamp.close.normal and no message, where its client may
// tell a ban from a normal close (and reconnect after the latter). They
// are read by position too (kill_all's are its first two); given both
// ways, or a reason that is not a URI, the call is refused.
func TestKillReasonByPosition(t *testing.T) {
	e := newEnv(t, 2, nil)
	admin := e.joinAs(proto.JSON, "admin")
	expectGoodbye := func(v *tc, reason, message string) {
		t.Helper()
		m := v.expect(proto.CodeGoodbye)
		if string(m.URI) != reason || m.Opt.String(proto.KeyMessage) != message {
			t.Fatalf("session %d: GOODBYE %s %q, want %s %q", v.id, m.URI, m.Opt.String(proto.KeyMessage), reason, message)
		}
	}
	v := e.joinAs(proto.MsgPack, "v")
	admin.callMeta("wamp.session.kill", []any{v.id, "com.app.banned", "banned for spam"}, nil)
	expectGoodbye(v, "com.app.banned", "banned for spam")

	v1, v2 := e.joinAs(proto.JSON, "dev"), e.joinAs(proto.CBOR, "dev")
	if n, _ := admin.callMeta("wamp.session.kill_by_authid", []any{"dev", "com.app.rotated"}, nil).([]any); len(n) != 2 { // the sessions killed
		t.Fatalf("kill_by_authid killed %v, want 2", n)
	}
	expectGoodbye(v1, "com.app.rotated", "")
	expectGoodbye(v2, "com.app.rotated", "")
	e.sync() // their loops leave the realm after sending the GOODBYE: not counted below

	v3 := e.joinAs(proto.JSON, "u3")
	if n := admin.callMeta("wamp.session.kill_by_authrole", []any{"user", nil, "maintenance"}, nil); n != int64(1) {
		t.Fatalf("kill_by_authrole killed %v, want 1", n)
	}
	expectGoodbye(v3, proto.CloseNormal, "maintenance")
	e.sync()

	v4 := e.joinAs(proto.JSON, "u4")
	if n := admin.callMeta("wamp.session.kill_all", []any{"com.app.restart", "back in 5 minutes"}, nil); n != int64(1) {
		t.Fatalf("kill_all killed %v, want 1", n)
	}
	expectGoodbye(v4, "com.app.restart", "back in 5 minutes")

	// Given both ways, or not a URI, or a message that is not a string:
	// refused, and nobody is killed.
	v5 := e.joinAs(proto.JSON, "u5")
	for _, bad := range []struct {
		proc   string
		args   []any
		kwargs map[string]any
		uri    string
	}{
		{"wamp.session.kill", []any{v5.id, "com.a"}, map[string]any{"reason": "com.b"}, proto.URIInvalidArgument},
		{"wamp.session.kill", []any{v5.id, nil, "m"}, map[string]any{"message": "m"}, proto.URIInvalidArgument},
		{"wamp.session.kill", []any{v5.id, "not a uri"}, nil, proto.URIInvalidURI},
		{"wamp.session.kill", []any{v5.id, "com.a", 42}, nil, proto.URIInvalidArgument},
		{"wamp.session.kill_by_authid", []any{"u5", 7}, nil, proto.URIInvalidURI},
		{"wamp.session.kill_all", []any{"com.a"}, map[string]any{"reason": "com.a"}, proto.URIInvalidArgument},
	} {
		req := admin.call(bad.proc, nil, bad.args, bad.kwargs)
		admin.expectError(proto.CodeCall, req, bad.uri)
	}
	v5.quiet()
}
