package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A call from another node whose caller canceled it (kill) before any
// shard held its invocation, re-picked after its callee unregistered, ends
// canceled as 98e53de has it, also when the new pick is a callee the node
// would refuse the call for (here: a progressive call invocation, and a
// callee that did not announce the feature): the remembered interrupt was
// read after the refusals, and the caller, which had asked to cancel, got
// the refusal's feature_not_supported.
func TestMeshRepickCanceledEndsCanceledNotRefused(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	x := es[1].joinOn(0, proto.JSON)
	regX := x.register("com.prog", map[string]any{"invoke": "first"}) // x is picked
	y := es[1].connectOn(0, proto.JSON)
	y.hello("realm1", map[string]any{"callee": map[string]any{"features": map[string]any{"call_canceling": true, "shared_registration": true}}}, nil)
	y.id = y.expect(proto.CodeWelcome).ID
	y.register("com.prog", map[string]any{"invoke": "first"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := es[1].stallShard(t, 0)
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	req := caller.nextReq()
	caller.callChunk(req, "com.prog", true, 0)
	mm.drainNode(1)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
	mm.drainNode(1)
	es[1].execs[1].do(func() {}) // shard 1, which holds nothing, has remembered the interrupt
	close(gate)
	mm.sync()
	x.expect(proto.CodeUnregistered)
	y.quiet()
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	assertNothingPending(t, mm)
}
