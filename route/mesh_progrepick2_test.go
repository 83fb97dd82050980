package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation from another node picked for a second
// time on its shard (its first callee gone, and the callee the shard then
// picked gone too) does not go to a callee of another shard: the chunks
// that came meanwhile wait on this shard (MeshDeliver sends them to the
// shard the call was placed on), which drops them once the invocation
// is elsewhere, so that callee got the first chunk and the later ones
// without those between, and never a final one if it was among them (the
// call hung). The call goes back to its caller's node, as when the shard
// has no other callee, and fails there (no_available_callee: its chunks
// went on).
//
// The second pick's callee cannot be gone in today's code (the shard picks
// it and delivers to it in one turn, and a callee leaves its
// registration's list and its session's set of registrations in one turn
// of its own shard): the test takes the session's registration away
// behind the shard's back, the state meshDeliver's repicked branch is for.
func TestMeshProgressiveSecondRepickKeepsChunks(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	x := es[1].joinOn(0, proto.JSON)
	regX := x.register("com.pstream", map[string]any{"invoke": "first"})
	y := es[1].joinOn(1, proto.JSON)
	y.register("com.pstream", map[string]any{"invoke": "first"})
	z := es[1].joinOn(0, proto.JSON)
	regZ := z.register("com.pstream", map[string]any{"invoke": "first"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := es[1].stallShard(t, 0)
	// x's UNREGISTER waits on its shard, ahead of the invocation the node
	// picks x for, and of the second chunk.
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	req := caller.nextReq()
	caller.callChunk(req, "com.pstream", true, 0)
	mm.drainNode(1)
	caller.callChunk(req, "com.pstream", true, 1)
	mm.drainNode(1)
	// z, which the shard picks next, no longer holds the registration
	// though its list still has it (shard 0 is stalled: nothing else
	// touches z's session).
	ref := z.sess.regs[regZ]
	delete(z.sess.regs, regZ)
	close(gate)
	mm.sync()
	es[1].execs[0].do(func() { z.sess.regs[regZ] = ref })
	caller.callChunk(req, "com.pstream", false, 2)
	mm.sync()

	for _, c := range []*tc{x, y, z} {
		var chunks []int64
		for {
			var m *proto.Message
			select {
			case m = <-c.peer.in:
			default:
			}
			if m == nil {
				break
			}
			if m.Type == proto.CodeInvocation {
				chunks = append(chunks, argsOf(m)[0].(int64))
			}
		}
		if len(chunks) > 0 && len(chunks) != 3 {
			t.Fatalf("callee %d got chunks %v of the call, want all three or none", c.id, chunks)
		}
		if len(chunks) == 3 {
			t.Logf("callee %d got the call whole", c.id)
			return
		}
	}
	m := caller.expect(proto.CodeError)
	if m.Request != req {
		t.Fatalf("the caller got %s", describe(m))
	}
	t.Logf("the call failed at its caller: %s", describe(m))
	assertNothingPending(t, mm)
}
