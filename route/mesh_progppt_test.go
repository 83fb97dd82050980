package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation in payload passthru mode goes at once to
// a node with a callee that announced both progressive_call_invocations
// and payload_passthru_mode, as a pick on one node does (pickCallee).
// Before, the directory said nothing of payload passthru: node B, whose
// callee takes progressive invocations but not payload passthru, was
// picked (first: its callee registered first; roundrobin: every other
// call), refused the call feature_not_supported, and the caller, whose
// chunks go back to back, got that error (its second chunk had gone:
// too late to reroute) while node C's callee could take the call.
func TestMeshProgressivePPTPicksCapableNode(t *testing.T) {
	for _, policy := range []string{"first", "last", "roundrobin", "random"} {
		t.Run(policy, func(t *testing.T) {
			mm, es := newMemMesh(t, 3, 1, nil)
			// REGISTER times: B's before C's for first, after for last.
			es[1].clock.add(time.Second)
			es[2].clock.add(2 * time.Second)
			if policy == "last" {
				es[1].clock.add(2 * time.Second)
			}
			progOnly := es[1].joinWith(proto.JSON, allFeatures)
			progOnly.register("com.stream", map[string]any{"invoke": policy})
			able := es[2].joinWith(proto.JSON, pptFeatures())
			able.register("com.stream", map[string]any{"invoke": policy})
			mm.sync()
			caller := es[0].joinWith(proto.JSON, pptFeatures())
			for range 4 {
				req := caller.nextReq()
				for i := range 2 { // back to back, as a stream goes
					o := map[string]any{"ppt_scheme": "x_custom"}
					if i == 0 {
						o["progress"] = true
					}
					caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(o), URI: []byte("com.stream"), Args: raw(t, proto.JSON, []any{i})})
				}
				mm.sync()
				select {
				case m := <-caller.peer.in:
					t.Fatalf("the caller got %s: want its call given to C's callee", describe(m))
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
			progOnly.quiet()
		})
	}
}
