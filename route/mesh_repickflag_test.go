package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// liveKeys returns the calls from other nodes ms holds as in flight.
func (ms *meshState) liveKeys() []minvKey {
	var l []minvKey
	for i := range ms.live {
		ls := &ms.live[i]
		ls.mu.Lock()
		for k := range ls.m {
			l = append(l, k)
		}
		ls.mu.Unlock()
	}
	return l
}

// An interrupt another shard remembered for a call from another node
// (meshState.interrupted) survives the call's re-pick: the shard whose
// picked callee unregistered gave the call's live entry back and took a
// new one for the re-pick, which forgot the interrupt, and the new pick's
// shard delivered the INVOCATION of a call its caller had canceled
// whenever it ran the re-posted invocation before the first shard ran its
// own copy of the interrupt (which then found nothing to interrupt: the
// callee never got an INTERRUPT). The shards' order is forced here: y's
// shard (0) runs its copy of the interrupt, then x's shard (1), stalled,
// runs x's UNREGISTER and the invocation, then y's shard the re-posted
// invocation, and only then x's shard its copy of the interrupt.
func TestMeshRepickKeepsRememberedInterrupt(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	b := es[1].r
	y := es[1].joinOn(0, proto.JSON)
	x := es[1].joinOn(1, proto.JSON)
	regX := x.register("com.slow", map[string]any{"invoke": "first"}) // x is picked
	y.register("com.slow", map[string]any{"invoke": "first"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := make(chan struct{})
	if err := es[1].execs[1].Execute(func() { <-gate }); err != nil {
		t.Fatal(err)
	}
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	req := caller.call("com.slow", nil, []any{1}, nil)
	mm.drainNode(1)
	keys := b.ms.liveKeys()
	if len(keys) != 1 {
		t.Fatalf("%d calls live on the callee's node, want 1", len(keys))
	}
	k := keys[0]
	intr := func(sh *Shard) {
		sh.meshInterrupt(&task{kind: tMeshInterrupt, a: k.callID, b: uint64(k.node), mode: proto.CancelKillNoWait, c: &carry{uri: proto.URICanceled}})
	}
	es[1].execs[0].do(func() { intr(b.Shard(0)) }) // y's shard: not its invocation yet, remembered
	close(gate)
	es[1].execs[1].do(func() {}) // x's shard: UNREGISTER, then the invocation, re-posted to y's
	es[1].execs[0].do(func() {}) // y's shard runs it
	es[1].execs[1].do(func() { intr(b.Shard(1)) })
	mm.sync()
	x.expect(proto.CodeUnregistered)
	select {
	case m := <-y.peer.in:
		t.Errorf("the callee got %s %s for a call whose interrupt its node had remembered", m.Type, describe(m))
		select {
		case m := <-y.peer.in:
			t.Logf("then %s %s", m.Type, describe(m))
		case <-time.After(20 * time.Millisecond):
			t.Logf("and never an INTERRUPT")
		}
	default:
	}
	// The caller's own CANCEL ends the call at its node.
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	mm.sync()
	if p := b.MeshPending(); p != 0 {
		t.Errorf("%d invocations still held on the callee's node", p)
	}
	if n := b.ms.invs.Load(); n != 0 {
		t.Errorf("%d invocations counted in max_invocations", n)
	}
	if n := b.ms.liveCount(); n != 0 {
		t.Errorf("%d calls still live on the callee's node", n)
	}
}
