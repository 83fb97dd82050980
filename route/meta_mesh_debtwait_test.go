package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The gathered meta calls outside the walk budget (they look one entry
// up, count without visiting or match one URI) started their gather at
// once while their session was in debt for its earlier gathers, charged
// after (known-49, "Mesh meta"); since d65433c a new gathered call of a
// session in debt waits for the debt before it asks, whatever the
// procedure. Its test covers wamp.session.get; this one each of them:
// in debt, none asks; the debt paid, each asks once and is answered.
func TestMeshLookupsOutsideWalkBudgetWaitForDebt(t *testing.T) {
	for _, c := range []struct {
		proc string
		args []any
	}{
		{"wamp.subscription.lookup", []any{"com.x"}},
		{"wamp.subscription.match", []any{"com.x"}},
		{"wamp.subscription.get", []any{int64(5)}},
		{"wamp.subscription.count_subscribers", []any{int64(5)}},
		{"wamp.registration.count_callees", []any{int64(5)}},
		{"wamp.session.get", []any{int64(12345)}},
	} {
		t.Run(c.proc, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			e := es[0]
			att := e.join(proto.MsgPack)
			att.exec.do(func() { att.sess.walks = walkBudget{tokens: -walkRate, at: e.clock.now().UnixNano()} }) // a second's debt
			q0 := mm.nodes[0].queries.Load()
			req := att.call(c.proc, nil, c.args, nil)
			mm.sync()
			if q := mm.nodes[0].queries.Load() - q0; q != 0 {
				t.Fatalf("%s of a session in debt asked the other node at once (%d queries)", c.proc, q)
			}
			e.advance(2 * time.Second)
			mm.sync()
			if q := mm.nodes[0].queries.Load() - q0; q != 1 {
				t.Fatalf("%s once the debt was paid: %d queries, want 1", c.proc, q)
			}
			if m := att.recv(); m.Request != req || (m.Type != proto.CodeResult && m.Type != proto.CodeError) {
				t.Fatalf("got %v %s, want the answer to request %d", m.Type, describe(m), req)
			}
		})
	}
}
