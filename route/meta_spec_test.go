package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.session.count and wamp.session.list take filter_authroles by
// keyword too, as Crossbar.io does (its procedures are Python functions,
// so Autobahn|Python's session.call("wamp.session.count",
// filter_authroles=[...]) filters there): a filter given so was ignored,
// and the caller was told about every session of the realm. Given both
// ways it is refused, as Crossbar refuses it (a Python TypeError).
func TestSessionCountListFilterByKeyword(t *testing.T) {
	e := newEnv(t, 2, nil)
	a := e.join(proto.JSON)
	b := e.join(proto.MsgPack)
	for _, tc := range []struct {
		proc  string
		roles []any
		want  any
	}{
		{"wamp.session.count", []any{"nobody"}, 0.0},
		{"wamp.session.count", []any{"anonymous"}, 2.0},
		{"wamp.session.list", []any{"nobody"}, []any{}},
		{"wamp.session.count", []any{}, 0.0},
	} {
		a.call(tc.proc, nil, nil, map[string]any{"filter_authroles": tc.roles})
		m := a.expect(proto.CodeResult)
		if got := msPlain(t, argsOf(m)); len(got.([]any)) != 1 || !equalPlain(t, got.([]any)[0], tc.want) {
			t.Errorf("%s(filter_authroles=%v) = %v, want %v", tc.proc, tc.roles, argsOf(m), tc.want)
		}
	}
	a.call("wamp.session.list", nil, nil, map[string]any{"filter_authroles": []any{"anonymous"}})
	if got := argsOf(a.expect(proto.CodeResult)); len(got) != 1 || len(got[0].([]any)) != 2 {
		t.Errorf("wamp.session.list(filter_authroles=[anonymous]) = %v, want both sessions (%d, %d)", got, a.id, b.id)
	}
	for _, proc := range []string{"wamp.session.count", "wamp.session.list"} {
		req := a.call(proc, nil, nil, map[string]any{"filter_authroles": "anonymous"})
		a.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
		req = a.call(proc, nil, []any{[]any{"anonymous"}}, map[string]any{"filter_authroles": []any{"anonymous"}})
		a.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	}
	// The positional form is unchanged; another keyword is refused
	// (TestMetaUnknownKeywordRefused), as Crossbar.io refuses it.
	a.call("wamp.session.count", nil, []any{[]any{"nobody"}}, nil)
	if got := argsOf(a.expect(proto.CodeResult)); len(got) != 1 || !equalPlain(t, got[0], 0.0) {
		t.Errorf("wamp.session.count([nobody]) = %v, want 0", got)
	}
	req := a.call("wamp.session.count", nil, []any{[]any{"nobody"}}, map[string]any{"other": 1})
	a.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
}

func equalPlain(t *testing.T, a, b any) bool {
	t.Helper()
	return msString(msPlain(t, a)) == msString(msPlain(t, b))
}
