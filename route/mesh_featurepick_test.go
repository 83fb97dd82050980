package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation (or a call in payload passthru mode) to a
// shared registration whose callees are on other nodes goes to a callee
// that announced the feature when one has, as on one node
// (TestSharedPickHonoursCalleeFeatures): the caller's node picks a node by
// the policy, and a node whose callees cannot take the call must not end
// it feature_not_supported while another node's callee can.
func TestMeshSharedPickHonoursCalleeFeatures(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	for _, policy := range []string{"roundrobin", "first", "last"} {
		t.Run(policy, func(t *testing.T) {
			mm, es := newMemMesh(t, 4, 1, nil)
			// The node whose callee can take the calls registers between
			// two that cannot (first picks before it, last after it).
			plain1 := es[1].joinWith(proto.JSON, plainRoles)
			plain1.register("com.upload", map[string]any{"invoke": policy})
			mm.sync()
			able := es[2].joinWith(proto.JSON, pptFeatures())
			able.register("com.upload", map[string]any{"invoke": policy})
			mm.sync()
			plain2 := es[3].joinWith(proto.JSON, plainRoles)
			plain2.register("com.upload", map[string]any{"invoke": policy})
			mm.sync()
			caller := es[0].joinWith(proto.JSON, pptFeatures())
			refused := featureCallsRefused(t, caller, able, mm.sync)
			plain1.quiet()
			plain2.quiet()
			if refused > 0 {
				t.Errorf("%d of 6 progressive or payload passthru calls to a %s registration with a callee on another node that takes them got an ERROR: want every one given to that callee", refused, policy)
			}
			// With no callee that can, the call is refused
			// feature_not_supported (not no_available_callee).
			able.goodbye()
			mm.sync()
			req := caller.nextReq()
			caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{"ppt_scheme": "x_custom", "ppt_serializer": "native"}), URI: []byte("com.upload"), Args: raw(t, proto.JSON, []any{[]byte{1}})})
			mm.sync()
			caller.expectError(proto.CodeCall, req, proto.URIFeatureNotSupported)
			// A call that needs no feature still reaches a callee.
			caller.call("com.upload", nil, []any{1}, nil)
			mm.sync()
			select {
			case <-plain1.peer.in:
			case <-plain2.peer.in:
			default:
				t.Fatal("a plain call reached no callee")
			}
		})
	}
}
