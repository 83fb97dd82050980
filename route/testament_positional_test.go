package route

import (
	"reflect"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestTestamentPositionalOptions: Crossbar.io's testament procedures are
// Python functions, add_testament(topic, args, kwargs, publish_options,
// scope) and flush_testaments(scope), so a client may give publish_options
// and scope by position (Autobahn|JS's call('wamp.session.flush_testaments',
// ['detached'])). The router read them by keyword only and ignored them
// given by position, silently: flush_testaments('detached') flushed the
// destroyed testaments and kept the detached ones, and a testament's
// eligible list given by position was dropped, so the testament went to
// every subscriber of its topic. They are read by position too; given both
// ways, the call is refused.
func TestTestamentPositionalOptions(t *testing.T) {
	e := newEnv(t, 2, nil)
	w := e.joinAs(proto.JSON, "w")
	w.subscribe("com.t", nil)
	x := e.joinAs(proto.MsgPack, "x")
	x.subscribe("com.t", nil)
	c := e.joinAs(proto.JSON, "c")
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"for w only"}, map[string]any{}, map[string]any{"eligible_authid": []any{"w"}}}, nil)
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"destroyed"}}, nil)
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{"detached, flushed"}, nil, nil, "detached"}, nil)
	c.callMeta("wamp.session.flush_testaments", []any{"detached"}, nil)
	c.drop()
	e.sync()
	got := func(s *tc) (out []any) {
		for {
			select {
			case m := <-s.peer.in:
				if m.Type != proto.CodeEvent {
					t.Fatalf("session %d: got %v %s, want EVENT", s.id, m.Type, describe(m))
				}
				out = append(out, argsOf(m)...)
			default:
				return out
			}
		}
	}
	if a := got(w); !reflect.DeepEqual(a, []any{"for w only", "destroyed"}) {
		t.Fatalf("w got testaments %v, want [for w only destroyed]", a)
	}
	if a := got(x); !reflect.DeepEqual(a, []any{"destroyed"}) {
		t.Fatalf("x got testaments %v, want [destroyed] (the other is for w only)", a)
	}
	w.quiet()
	x.quiet()

	d := e.joinAs(proto.JSON, "d")
	// Given both ways, or a scope that is none, refused.
	for _, bad := range []struct {
		proc   string
		args   []any
		kwargs map[string]any
	}{
		{"wamp.session.add_testament", []any{"com.t", []any{}, map[string]any{}, map[string]any{}}, map[string]any{"publish_options": map[string]any{}}},
		{"wamp.session.add_testament", []any{"com.t", []any{}, map[string]any{}, nil, "detached"}, map[string]any{"scope": "detached"}},
		{"wamp.session.add_testament", []any{"com.t", []any{}, map[string]any{}, nil, "forever"}, nil},
		{"wamp.session.add_testament", []any{"com.t", []any{}, map[string]any{}, "not a dictionary"}, nil},
		{"wamp.session.flush_testaments", []any{"destroyed"}, map[string]any{"scope": "destroyed"}},
		{"wamp.session.flush_testaments", []any{"forever"}, nil},
	} {
		req := d.call(bad.proc, nil, bad.args, bad.kwargs)
		d.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	}
}
