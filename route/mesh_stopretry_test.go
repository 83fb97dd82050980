package route

import (
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A call to another node that ends at its caller (here a CANCEL in
// killnowait mode) while the mesh refuses the interrupt for the callee's
// node (its outbound queue full past the reserve) has the interrupt sent
// once the queue takes it again. Before, it was counted (SendFailed) and
// forgotten: the callee's node held the invocation, one of its
// max_invocations, and its callee worked on, until the callee answered
// or the caller's node left, for ever for a callee that does not answer
// (the callee's node applies no timeout of its own to remote calls).
func TestMeshRefusedStopSentLater(t *testing.T) {
	for _, mode := range []string{"killnowait", "kill"} {
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
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": mode})})
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
		es[0].advance(time.Second) // still refused
		mm.sync()
		if p := es[1].r.MeshPending(); p != 1 {
			t.Fatalf("%s: MeshPending = %d on the callee's node with the interrupt refused, want 1", mode, p)
		}
		mm.nodes[0].sendErr.Store(nil)
		es[0].advance(time.Second)
		mm.sync()
		if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
			t.Fatalf("%s: callee got %s, want the INTERRUPT (killnowait) of %d", mode, describe(m), inv.Request)
		}
		if p := es[1].r.MeshPending(); p != 0 {
			t.Fatalf("%s: MeshPending = %d on the callee's node after the interrupt went", mode, p)
		}
		caller.quiet()
	}
}

// The interrupts a shard keeps for several nodes go to each node as its
// queue takes them: one node whose queue stays full does not hold back
// another's. Before, the retry stopped at the first refusal, so an
// interrupt kept for a node with room waited behind one for a node whose
// link stayed slow (its heartbeats kept it alive) for as long as that
// lasted, its callee holding the invocation all the while.
func TestMeshRefusedStopNotHeldBehindAnotherNode(t *testing.T) {
	mm, es := newMemMesh(t, 3, 2, nil)
	slow := es[1].joinOn(1, proto.JSON)
	slow.register("com.slow", nil)
	free := es[2].joinOn(1, proto.JSON)
	free.register("com.free", nil)
	mm.sync()
	caller := es[0].joinOn(0, proto.JSON)
	reqSlow := caller.call("com.slow", nil, []any{1}, nil)
	reqFree := caller.call("com.free", nil, []any{2}, nil)
	mm.sync()
	slow.expect(proto.CodeInvocation)
	inv := free.expect(proto.CodeInvocation)
	full := errors.New("outbound queue full")
	mm.nodes[0].sendErr.Store(&full)
	for _, req := range []uint64{reqSlow, reqFree} { // the slow node's interrupt kept first
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
	}
	// The slow node's queue stays full; the free node's takes again.
	mm.nodes[0].refuseTo.Store(uint64(mm.nodes[1].id) + 1)
	mm.nodes[0].sendErr.Store(nil)
	es[0].advance(time.Second)
	mm.sync()
	if m := free.expect(proto.CodeInterrupt); m.Request != inv.Request {
		t.Fatalf("free node's callee got %s, want the INTERRUPT of %d", describe(m), inv.Request)
	}
	if p := es[2].r.MeshPending(); p != 0 {
		t.Fatalf("MeshPending = %d on the free node after its interrupt went", p)
	}
	if p := es[1].r.MeshPending(); p != 1 {
		t.Fatalf("MeshPending = %d on the slow node with its interrupt refused, want 1", p)
	}
	mm.nodes[0].refuseTo.Store(0)
	es[0].advance(time.Second)
	mm.sync()
	slow.expect(proto.CodeInterrupt)
	caller.quiet()
}

// A shard retries its kept interrupts on one timer: when a node's leave
// emptied them while the timer was pending, the next refused interrupt
// armed a second one, and each went on re-arming itself while any were
// kept: every such leave made one more walk of them all (up to 4,096
// interrupts encoded and offered) every 250 ms.
func TestMeshRefusedStopsOneRetryTimer(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	ca := es[1].join(proto.JSON)
	ca.register("com.a", nil)
	cb := es[2].join(proto.JSON)
	cb.register("com.b", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	full := errors.New("outbound queue full")
	cancel := func(proc string, callee *tc) {
		t.Helper()
		req := caller.call(proc, nil, []any{1}, nil)
		mm.sync()
		callee.expect(proto.CodeInvocation)
		mm.nodes[0].sendErr.Store(&full)
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
		es[0].sync()
	}
	cancel("com.a", ca) // kept, the retry timer armed
	es[0].r.MeshNodeDown(mm.nodes[1].id)
	es[0].sync() // com.a's interrupt forgotten; the timer still pending
	mm.nodes[0].sendErr.Store(nil)
	cancel("com.b", cb) // kept again
	for i := 0; i < 4; i++ {
		before := mm.nodes[0].refused.Load()
		es[0].advance(stopRetryEvery)
		if n := mm.nodes[0].refused.Load() - before; n != 1 {
			t.Fatalf("turn %d: %d retries of the one interrupt kept, want 1", i, n)
		}
	}
	mm.nodes[0].sendErr.Store(nil)
	es[0].advance(stopRetryEvery)
	mm.sync()
	cb.expect(proto.CodeInterrupt)
	caller.quiet()
}
