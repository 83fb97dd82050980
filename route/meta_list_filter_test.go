package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.list and wamp.subscription.list with Crossbar.io's
// session_id filter (by position or keyword) are refused with
// invalid_argument: before, the filter was ignored and the caller was
// given the whole realm's list as the session's. Without arguments, or
// with null, they list the realm.
func TestListSessionFilterRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	a := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	b := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	a.register("com.a", nil)
	a.subscribe("com.a", nil)
	b.register("com.b", nil)
	b.subscribe("com.b", nil)
	for _, proc := range []string{"wamp.registration.list", "wamp.subscription.list"} {
		for _, c := range []struct {
			args   []any
			kwargs map[string]any
		}{
			{[]any{b.id}, nil},
			{nil, map[string]any{"session_id": b.id}},
			{[]any{nil, "x"}, nil},
		} {
			req := b.call(proc, nil, c.args, c.kwargs)
			b.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
		}
		for _, args := range [][]any{nil, {nil}} {
			l := b.callMeta(proc, args, nil).(map[string]any)
			if n := len(l["exact"].([]any)); n != 2 {
				t.Fatalf("%s(%v): %d exact, want 2", proc, args, n)
			}
		}
	}
}
