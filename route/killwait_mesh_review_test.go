package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Review: a kill CANCEL of a call held by another node, whose callee
// ignores the INTERRUPT, ends at the kill wait (before the call's own
// 30 s timeout) with ERROR canceled; the callee's node drops the
// invocation without a second INTERRUPT and the late YIELD goes nowhere.
func TestMeshKillCancelWaitEnds(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.slow", map[string]any{"forward_timeout": true})
	mm.sync()
	caller := es[0].join(proto.CBOR)
	req := caller.call("com.slow", map[string]any{"timeout": 30000}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	es[0].advance(time.Second)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
	if m := callee.expect(proto.CodeInterrupt); m.Opt.String(proto.KeyMode) != "kill" {
		t.Fatalf("INTERRUPT mode %q", m.Opt.String(proto.KeyMode))
	}
	es[0].advance(8 * time.Second)
	mm.sync()
	caller.quiet()
	es[0].advance(3 * time.Second)
	mm.sync()
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	mm.sync()
	callee.quiet() // no second INTERRUPT
	callee.yield(inv.Request, nil, []any{"late"})
	mm.sync()
	es[0].advance(30 * time.Second)
	mm.sync()
	caller.quiet()
	assertNothingPending(t, mm)
}
