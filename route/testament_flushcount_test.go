package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.session.flush_testaments answers the number of testaments it
// flushed, as Crossbar.io's does ("returns: Number of flushed testament
// events", an int), where it answered a RESULT without arguments: a client
// written against Crossbar.io (n = await call('wamp.session.flush_testaments'))
// got None.
func TestFlushTestamentsAnswersCount(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	if got := c.callMeta("wamp.session.flush_testaments", nil, nil); got != int64(0) {
		t.Fatalf("flush_testaments of a session without testaments: %#v, want 0", got)
	}
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{1}}, nil)
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{2}}, nil)
	c.callMeta("wamp.session.add_testament", []any{"com.t", []any{3}}, map[string]any{"scope": "detached"})
	for _, tc := range []struct {
		args []any
		want int64
	}{
		{nil, 2},
		{[]any{"detached"}, 1},
		{nil, 0},
		{[]any{"detached"}, 0},
	} {
		if got := c.callMeta("wamp.session.flush_testaments", tc.args, nil); got != tc.want {
			t.Fatalf("flush_testaments(%v): %#v, want %d", tc.args, got, tc.want)
		}
	}
}
