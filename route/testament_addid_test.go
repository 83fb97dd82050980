package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.session.add_testament answers an id, as Crossbar.io's does ("pub_id
// = util.id() ... return pub_id", an int: its own tests assert the result
// is one), where it answered a RESULT without arguments: a client written
// against Crossbar.io that keeps or logs the id (res = await
// call('wamp.session.add_testament', ...)) got None. The id is the
// publication id of the testament's EVENT when it is published, so that a
// subscriber can tell which testament it got.
func TestAddTestamentAnswersID(t *testing.T) {
	e := newEnv(t, 2, nil)
	sub := e.join(proto.MsgPack)
	sub.subscribe("com.t", nil)
	c := e.join(proto.JSON)
	ids := map[int64]bool{}
	for _, tc := range []struct {
		args   []any
		kwargs map[string]any
	}{
		{[]any{"com.t", []any{"destroyed"}}, nil},
		{[]any{"com.t", []any{"detached"}}, map[string]any{"scope": "detached"}},
	} {
		got := c.callMeta("wamp.session.add_testament", tc.args, tc.kwargs)
		id, ok := got.(int64)
		if !ok || id < 1 || id > proto.MaxID || ids[id] {
			t.Fatalf("add_testament(%v, %v): %#v, want a new id in [1, 2^53]", tc.args, tc.kwargs, got)
		}
		ids[id] = true
	}
	c.drop()
	e.sync()
	for range 2 {
		m := sub.recv()
		if m.Type != proto.CodeEvent {
			t.Fatalf("subscriber got %s, want the testaments' EVENTs", describe(m))
		}
		if !ids[int64(m.ID2)] {
			t.Fatalf("testament EVENT %s: publication %d is none of the ids add_testament answered (%v)", describe(m), m.ID2, ids)
		}
		delete(ids, int64(m.ID2))
	}
}
