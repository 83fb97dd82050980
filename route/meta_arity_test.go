package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A meta procedure called with more positional arguments than it takes is
// refused with wamp.error.invalid_argument, as Crossbar.io refuses it (its
// procedures are Python functions: a TypeError), and does nothing. Before,
// the extra arguments were ignored and the call done: a client that
// shifted its arguments by one (kill(id, reason, message, extra), or
// remove_callee's reason placed fourth) killed or removed as if it had
// been understood, and was told it was.
func TestMetaExtraPositionalArgumentsRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	c := e.joinAs(proto.JSON, "caller")
	w := e.joinAs(proto.MsgPack, "victim")
	reg := w.register("com.p", nil)
	sub := w.subscribe("com.t", nil)
	for _, bad := range []struct {
		proc string
		args []any
	}{
		{"wamp.session.count", []any{nil, "x"}},
		{"wamp.session.list", []any{nil, "x"}},
		{"wamp.session.get", []any{w.id, "x"}},
		{"wamp.session.kill", []any{w.id, "com.reason", "msg", "x"}},
		{"wamp.session.kill_by_authid", []any{"victim", "com.reason", "msg", "x"}},
		{"wamp.session.kill_by_authrole", []any{"user", "com.reason", "msg", "x"}},
		{"wamp.session.kill_all", []any{"com.reason", "msg", "x"}},
		{"wamp.session.add_testament", []any{"com.t", []any{1}, map[string]any{}, map[string]any{}, "destroyed", "x"}},
		{"wamp.session.flush_testaments", []any{"destroyed", "x"}},
		{"wamp.registration.list", []any{nil, "x"}},
		{"wamp.registration.lookup", []any{"com.p", nil, "x"}},
		{"wamp.registration.match", []any{"com.p", "x"}},
		{"wamp.registration.get", []any{reg, "x"}},
		{"wamp.registration.list_callees", []any{reg, "x"}},
		{"wamp.registration.count_callees", []any{reg, "x"}},
		{"wamp.registration.remove_callee", []any{reg, w.id, "com.reason", "x"}},
		{"wamp.subscription.list", []any{nil, "x"}},
		{"wamp.subscription.lookup", []any{"com.t", nil, "x"}},
		{"wamp.subscription.match", []any{"com.t", "x"}},
		{"wamp.subscription.get", []any{sub, "x"}},
		{"wamp.subscription.list_subscribers", []any{sub, "x"}},
		{"wamp.subscription.count_subscribers", []any{sub, "x"}},
		{"wamp.subscription.remove_subscriber", []any{sub, w.id, "com.reason", "x"}},
	} {
		req := c.call(bad.proc, nil, bad.args, nil)
		m := c.recv()
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
			t.Errorf("%s with %d positional arguments: got %s, want %s", bad.proc, len(bad.args), describe(m), proto.URIInvalidArgument)
			continue
		}
		if a := argsOf(m); len(a) == 0 || !strings.Contains(a[0].(string), "positional") {
			t.Errorf("%s: error %v does not say what was wrong", bad.proc, a)
		}
	}
	// Nothing was done: w is still a member, still the callee and the
	// subscriber, and c holds no testament (w gets no event when c goes).
	e.sync()
	if got := c.callMeta("wamp.session.count", nil, nil); !equalPlain(t, got, 2.0) {
		t.Fatalf("after the refused calls the realm has %v sessions, want 2", got)
	}
	if got := c.callMeta("wamp.registration.count_callees", []any{reg}, nil); !equalPlain(t, got, 1.0) {
		t.Fatalf("count_callees = %v, want 1", got)
	}
	if got := c.callMeta("wamp.subscription.count_subscribers", []any{sub}, nil); !equalPlain(t, got, 1.0) {
		t.Fatalf("count_subscribers = %v, want 1", got)
	}
	// At their full arity they are taken.
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"full"}, map[string]any{}, map[string]any{}, "destroyed"}, nil)
	c.callMeta("wamp.registration.lookup", []any{"com.p", map[string]any{"match": "exact"}}, nil)
	c.drop()
	e.sync()
	m := w.expect(proto.CodeEvent)
	if a := argsOf(m); len(a) != 1 || a[0] != "full" {
		t.Fatalf("w got testament %v, want [full] only", a)
	}
	w.quiet()
}

// Every meta procedure has its number of positional arguments.
func TestMetaArityListsEveryProcedure(t *testing.T) {
	for proc := range metaProcs {
		if _, ok := metaArity[proc]; !ok {
			t.Errorf("%s has no entry in metaArity", proc)
		}
	}
	for proc := range metaArity {
		if metaProcs[proc] == nil {
			t.Errorf("metaArity lists %s, which is no meta procedure", proc)
		}
	}
}
