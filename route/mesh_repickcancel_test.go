package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A call from another node whose picked callee unregisters before the
// INVOCATION is picked for again; a CANCEL (killnowait) its caller sent
// meanwhile was offered to every shard and dropped by those that did not
// hold the invocation yet, the new pick's among them: that callee got the
// INVOCATION and never its INTERRUPT, and the node kept the invocation
// (one of max_invocations) until the callee answered. The call is not
// delivered once its caller stopped waiting; with kill mode the caller
// gets canceled.
func TestMeshRepickAfterCancelNotDelivered(t *testing.T) {
	for _, mode := range []string{"killnowait", "kill"} {
		mm, es := newMemMesh(t, 2, 2, nil)
		x := es[1].joinOn(0, proto.JSON)
		regX := x.register("com.slow", map[string]any{"invoke": "first"})
		y := es[1].joinOn(1, proto.JSON)
		y.register("com.slow", map[string]any{"invoke": "first"})
		mm.sync()
		caller := es[0].join(proto.JSON)
		gate := es[1].stallShard(t, 0)
		x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
		req := caller.call("com.slow", nil, []any{1}, nil)
		mm.drainNode(1)
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": mode})})
		mm.drainNode(1)
		es[1].execs[1].do(func() {}) // y's shard has seen the interrupt
		close(gate)
		mm.sync()
		select {
		case m := <-y.peer.in:
			t.Fatalf("%s: the callee got %s for a call its caller had canceled", mode, describe(m))
		default:
		}
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
		if p := es[1].r.MeshPending(); p != 0 {
			t.Fatalf("%s: %d invocations still held on the callee's node", mode, p)
		}
		if n := es[1].r.ms.invs.Load(); n != 0 {
			t.Fatalf("%s: %d invocations counted in max_invocations", mode, n)
		}
	}
}
