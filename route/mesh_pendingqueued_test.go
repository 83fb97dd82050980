package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// MeshPending counts a call from another node that this node took (one of
// its max_invocations) and that waits in a shard's queue: here one picked
// for again after its first callee unregistered, and posted to a shard
// MeshPending had already asked. It asked the shards only for the
// invocations they held, so it said 0 while the invocation was on its
// way to a callee; a test waiting for "nothing pending" went on with the
// slot taken.
func TestMeshPendingCountsQueuedInvocation(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	y := es[1].joinOn(0, proto.JSON) // the second pick, on shard 0
	y.register("com.slow", map[string]any{"invoke": "last"})
	x := es[1].joinOn(1, proto.JSON) // the first pick (last), on shard 1
	regX := x.register("com.slow", map[string]any{"invoke": "last"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := es[1].stallShard(t, 1)
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	req := caller.call("com.slow", nil, []any{1}, nil)
	mm.drainNode(1) // taken, and queued for x's shard
	if n := es[1].r.ms.invs.Load(); n != 1 {
		t.Fatalf("%d invocations counted on the callee's node, want 1", n)
	}
	got := make(chan int, 1)
	go func() { got <- es[1].r.MeshPending() }()
	// MeshPending asked shard 0 and waits for shard 1 (its question is
	// behind the stall, the UNREGISTER and the queued invocation).
	x1 := es[1].execs[1]
	for deadline := time.Now().Add(10 * time.Second); len(x1.ch) < 3; {
		if time.Now().After(deadline) {
			t.Fatal("MeshPending did not ask shard 1")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if p := <-got; p < 1 {
		t.Fatalf("MeshPending = %d on the callee's node with an invocation on its way to a callee (one of max_invocations taken)", p)
	}
	mm.sync()
	inv := y.expect(proto.CodeInvocation)
	y.yield(inv.Request, nil, []any{"ok"})
	mm.sync()
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT for %d, want %d", m.Request, req)
	}
	for i, e := range es {
		if p := e.r.MeshPending(); p != 0 {
			t.Fatalf("node %d: MeshPending = %d after the call ended", i, p)
		}
	}
}
