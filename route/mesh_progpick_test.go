package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation from a node whose own callees of a
// shared registration do not announce progressive_call_invocations goes
// to another node's callee that does (meshPickProgressive), as a pick on
// one node skips to a capable callee. Before, roundrobin and random kept
// it local (a local callee always first) and the caller got
// feature_not_supported at once, every call.
func TestMeshProgressiveLeavesIncapableLocalCallees(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	for _, policy := range []string{"roundrobin", "random", "first", "last"} {
		t.Run(policy, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			plain := es[0].joinWith(proto.JSON, plainRoles)
			plain.register("com.stream", map[string]any{"invoke": policy})
			able := es[1].joinWith(proto.JSON, pptFeatures())
			able.register("com.stream", map[string]any{"invoke": policy})
			mm.sync()
			caller := es[0].joinWith(proto.JSON, pptFeatures())
			for range 4 {
				req := caller.nextReq()
				caller.callChunk(req, "com.stream", true, 0)
				mm.sync()
				caller.callChunk(req, "com.stream", false, 1)
				mm.sync()
				select {
				case m := <-caller.peer.in:
					t.Fatalf("the caller got %s: want its call given to the other node's callee", describe(m))
				default:
				}
				var inv *proto.Message
				for i := range 2 {
					inv = able.expect(proto.CodeInvocation)
					if v := argsOf(inv)[0].(int64); v != int64(i) {
						t.Fatalf("chunk %d of the call: got %d", i, v)
					}
				}
				able.yield(inv.Request, nil, []any{"ok"})
				mm.sync()
				caller.expect(proto.CodeResult)
			}
			plain.quiet()
		})
	}
}
