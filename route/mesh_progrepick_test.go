package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation from another node whose callee
// unregisters between the node's pick and the INVOCATION must not reach
// another callee without the chunks that came meanwhile: those were
// offered to every shard already, and a callee on another shard than the
// first pick's had them dropped, then got the first chunk and the last,
// not the one between. The call goes to a callee that gets every chunk,
// or fails at its caller.
func TestMeshProgressiveRepickKeepsChunks(t *testing.T) {
	for _, sameShard := range []bool{true, false} {
		progressiveRepick(t, sameShard)
	}
}

// progressiveRepick: with sameShard, a third callee, on the first pick's
// shard, is there to take the call.
func progressiveRepick(t *testing.T, sameShard bool) {
	mm, es := newMemMesh(t, 2, 2, nil)
	x := es[1].joinOn(0, proto.JSON)
	regX := x.register("com.pstream", map[string]any{"invoke": "first"})
	y := es[1].joinOn(1, proto.JSON)
	y.register("com.pstream", map[string]any{"invoke": "first"})
	callees := []*tc{x, y}
	if sameShard {
		z := es[1].joinOn(0, proto.JSON)
		z.register("com.pstream", map[string]any{"invoke": "first"})
		callees = append(callees, z)
	}
	mm.sync()
	caller := es[0].join(proto.JSON)
	gate := es[1].stallShard(t, 0)
	// x's UNREGISTER waits on its shard, ahead of the invocation the node
	// picks x for.
	x.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: x.nextReq(), ID: regX})
	req := caller.nextReq()
	caller.callChunk(req, "com.pstream", true, 0)
	mm.drainNode(1)
	caller.callChunk(req, "com.pstream", true, 1)
	mm.drainNode(1)
	es[1].execs[1].do(func() {}) // y's shard has seen chunk 1
	close(gate)
	mm.sync()
	caller.callChunk(req, "com.pstream", false, 2)
	mm.sync()

	got := map[*tc][]int64{}
	for _, c := range callees {
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
				got[c] = append(got[c], argsOf(m)[0].(int64))
			}
		}
	}
	invoked := false
	for c, chunks := range got {
		for i, v := range chunks {
			if v != int64(i) {
				t.Fatalf("callee %d got chunks %v of the call: chunk %d is missing", c.id, chunks, i)
			}
		}
		if len(chunks) > 0 {
			invoked = true
			if len(chunks) != 3 {
				t.Fatalf("callee %d got chunks %v, want 0, 1, 2", c.id, chunks)
			}
		}
	}
	if sameShard && len(got[callees[2]]) != 3 {
		t.Fatalf("the callee on the first pick's shard got chunks %v, want 0, 1, 2", got[callees[2]])
	}
	if !invoked {
		m := caller.expect(proto.CodeError)
		if m.Request != req {
			t.Fatalf("the caller got %s", describe(m))
		}
		t.Logf("the call failed at its caller: %s", describe(m))
	}
	if p := es[1].r.MeshPending(); p != 0 && !invoked {
		t.Fatalf("%d calls still pending on the callee's node", p)
	}
}
