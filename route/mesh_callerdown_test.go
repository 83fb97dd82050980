package route

import (
	"errors"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A call from another node still on its way to a callee of this node when
// this node learns that the caller's node left the mesh is not delivered:
// here one picked for again after its first callee unregistered, posted
// to a shard that had already dropped what the departed node's callers
// had there. That shard delivered it: the callee got an INVOCATION whose
// answer no caller waits for, and the node held it (one of
// max_invocations, and in MeshPending) until the callee answered, for
// ever when it does not.
func TestMeshNoInvocationForDepartedCallerNode(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	y := es[1].joinOn(0, proto.JSON) // the second pick, on shard 0
	y.register("com.slow", map[string]any{"invoke": "last"})
	x := es[1].joinOn(1, proto.JSON) // the first pick (last), on shard 1
	regX := x.register("com.slow", map[string]any{"invoke": "last"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := es[1].stallShard(t, 1)
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	caller.call("com.slow", nil, []any{1}, nil)
	mm.drainNode(1) // taken, and queued for x's shard
	// Node A leaves (mm.kill, without its sync: shard 1 is stalled).
	a := mm.nodes[0]
	a.dead.Store(true)
	b := mm.nodes[1]
	b.dispatch(func() {
		b.e.r.MeshNodeDown(a.id)
		b.e.r.MeshSessionsGone(a.id, MeshSlot(a.name))
	})
	mm.drainNode(1)
	es[1].execs[0].do(func() {}) // shard 0 dropped node A's invocations (none)
	close(gate)
	es[1].sync()
	select {
	case m := <-y.peer.in:
		t.Fatalf("the callee got %s for a call whose caller's node had left", describe(m))
	default:
	}
	if p := es[1].r.MeshPending(); p != 0 {
		t.Fatalf("MeshPending = %d on the callee's node after the caller's node left", p)
	}
	if n := es[1].r.ms.invs.Load(); n != 0 {
		t.Fatalf("%d invocations counted in max_invocations after the caller's node left", n)
	}
}

// A call whose caller's CANCEL its node could not send on (its outbound
// queue full past the reserve) stays with its callee on the callee's node
// until the callee answers or the caller's node leaves: held no longer
// than that departure (the callee is interrupted then).
func TestMeshRefusedCancelHeldUntilCallerNodeLeaves(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	callee := es[1].joinOn(1, proto.JSON)
	callee.register("com.slow", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.slow", nil, []any{1}, nil)
	mm.sync()
	inv := callee.expect(proto.CodeInvocation)
	full := errors.New("outbound queue full")
	mm.nodes[0].sendErr.Store(&full)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	mm.sync()
	if p := es[1].r.MeshPending(); p != 1 {
		t.Fatalf("MeshPending = %d on the callee's node after a refused cancel, want 1 (held)", p)
	}
	mm.kill(0)
	if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request {
		t.Fatalf("callee got %s, want the INTERRUPT of %d", describe(m), inv.Request)
	}
	if p := es[1].r.MeshPending(); p != 0 {
		t.Fatalf("MeshPending = %d on the callee's node after the caller's node left", p)
	}
	if n := es[1].r.ms.invs.Load(); n != 0 {
		t.Fatalf("%d invocations counted in max_invocations after the caller's node left", n)
	}
}
