package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMetaUnknownKeywordRefused: a keyword argument a meta procedure does
// not take was ignored, silently: flush_testaments(scop="detached") (a
// typo) flushed the destroyed testaments and kept the detached one, the
// caller told it was done; wamp.registration.list(session_id=…), which
// Crossbar.io answers with that session's registrations, listed every
// registration. Crossbar.io's meta procedures are Python functions, which
// refuse an unexpected keyword (a TypeError). Such a call is refused
// wamp.error.invalid_argument, naming the key, before it does anything;
// the keywords a procedure takes still work.
func TestMetaUnknownKeywordRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	c := e.join(proto.JSON)
	w := e.join(proto.MsgPack)
	w.subscribe("com.t", nil)
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"detached"}}, map[string]any{"scope": "detached"})
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"destroyed"}}, nil)
	for _, bad := range []struct {
		proc   string
		args   []any
		kwargs map[string]any
		key    string
	}{
		{"wamp.session.flush_testaments", nil, map[string]any{"scop": "detached"}, "scop"},
		{"wamp.session.add_testament", []any{"com.t", []any{"x"}}, map[string]any{"publish_option": map[string]any{}}, "publish_option"},
		{"wamp.session.count", nil, map[string]any{"filter_authrole": []any{"nobody"}}, "filter_authrole"},
		{"wamp.session.kill", []any{w.id}, map[string]any{"reason": "com.a", "mesage": "typo"}, "mesage"},
		{"wamp.session.kill_all", nil, map[string]any{"reasons": "com.a"}, "reasons"},
		{"wamp.registration.list", nil, map[string]any{"session_id": w.id}, "session_id"},
		{"wamp.subscription.lookup", []any{"com.t"}, map[string]any{"match": "prefix"}, "match"},
		{"wamp.subscription.remove_subscriber", []any{1, w.id}, map[string]any{"reson": "com.a"}, "reson"},
	} {
		req := c.call(bad.proc, nil, bad.args, bad.kwargs)
		m := c.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
		if a := argsOf(m); len(a) == 0 || !strings.Contains(a[0].(string), `"`+bad.key+`"`) {
			t.Fatalf("%s(%v): error %v, want it to name %q", bad.proc, bad.kwargs, a, bad.key)
		}
	}
	// Nothing was done: w is alive, and both testaments are published
	// when c goes (the refused flush flushed nothing).
	if got := c.callMeta("wamp.session.flush_testaments", nil, map[string]any{"scope": "detached"}); got != int64(1) {
		t.Fatalf("flush_testaments: %v", got)
	}
	c.drop()
	e.sync()
	m := w.expect(proto.CodeEvent)
	if a := argsOf(m); len(a) != 1 || a[0] != "destroyed" {
		t.Fatalf("w got testament %v, want [destroyed]", a)
	}
	w.quiet()
}
