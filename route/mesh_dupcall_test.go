package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A call envelope the link delivers twice (a faulty or retrying peer
// link) reaches one callee once, and its caller gets that callee's answer:
// the copy is dropped and counted. With the callees of the registration
// on two shards of the callee's node, the copy must not be invoked on the
// other shard's callee either.
func TestMeshDuplicateCallEnvelope(t *testing.T) {
	for _, shards := range []int{1, 2} {
		mm, es := newMemMesh(t, 2, shards, nil)
		var callees []*tc
		for i := 0; i < shards; i++ {
			c := es[1].joinOn(i, proto.JSON)
			c.register("com.dup", map[string]any{"invoke": "roundrobin"})
			callees = append(callees, c)
		}
		mm.sync()
		caller := es[0].join(proto.JSON)
		k := string([]byte{envCall})
		mm.nodes[0].dupKinds.Store(&k)
		for n := 0; n < 4; n++ {
			req := caller.call("com.dup", nil, []any{n}, nil)
			mm.sync()
			var invs []*tc
			var inv *proto.Message
			for _, c := range callees {
				select {
				case m := <-c.peer.in:
					if m.Type != proto.CodeInvocation {
						t.Fatalf("%d shards: callee got %s", shards, describe(m))
					}
					invs = append(invs, c)
					inv = m
				default:
				}
			}
			if len(invs) != 1 {
				t.Fatalf("%d shards, call %d: %d callees invoked for one CALL sent twice by the link, want 1", shards, n, len(invs))
			}
			// Nothing reached the caller before the callee answered.
			select {
			case m := <-caller.peer.in:
				t.Fatalf("%d shards, call %d: the caller got %s before its callee answered", shards, n, describe(m))
			case <-time.After(10 * time.Millisecond):
			}
			invs[0].yield(inv.Request, nil, []any{n})
			res := caller.expect(proto.CodeResult)
			if res.Request != req || argsOf(res)[0] != int64(n) {
				t.Fatalf("%d shards: RESULT %s", shards, describe(res))
			}
		}
		if got := es[1].r.MeshStats().BadEnvelopes.Load(); got != 4 {
			t.Fatalf("%d shards: %d bad envelopes counted, want the 4 copies", shards, got)
		}
		mm.nodes[0].dupKinds.Store(nil)
		if p := es[1].r.MeshPending(); p != 0 {
			t.Fatalf("%d shards: %d calls still pending on the callee's node", shards, p)
		}
	}
}
