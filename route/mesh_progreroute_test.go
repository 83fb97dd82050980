package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// syncNodes is memMesh.sync for some of its nodes only (another may be
// held: its dispatcher blocked).
func (mm *memMesh) syncNodes(idx ...int) {
	for range 4 {
		for _, i := range idx {
			n := mm.nodes[i]
			done := make(chan struct{})
			n.q <- func() { close(done) }
			<-done
			n.e.sync()
		}
	}
}

// A progressive call invocation bounced by the node it went to (its
// capable callee left before the call reached it) is sent on to a node
// with a callee that takes progressive call invocations, as the first
// pick is (meshPickProgressive): not to a node whose callees all refuse
// it. Before, the reroute's pick (pickUntried) knew nothing of the
// callees' features: node C, whose only callee does not announce
// progressive_call_invocations, came before D for first (last), its
// callee refused the call feature_not_supported, and the caller, whose
// second chunk had gone to C meanwhile, got that error while D's callee
// could take the call.
//
// In payload passthru mode, C's callee takes progressive invocations but
// not payload passthru (MeshReg.ProgPPT).
func TestMeshProgressiveRerouteSkipsIncapableNodes(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	for _, ppt := range []bool{false, true} {
		for _, policy := range []string{"first", "last", "roundrobin", "random"} {
			name := policy
			if ppt {
				name += "/ppt"
			}
			t.Run(name, func(t *testing.T) { progRerouteCase(t, policy, ppt, plainRoles) })
		}
	}
}

// progRerouteCase is a case of TestMeshProgressiveRerouteSkipsIncapableNodes.
func progRerouteCase(t *testing.T, policy string, ppt bool, plainRoles map[string]any) {
	// A: the caller; B: a capable callee that leaves; C: a plain
	// callee; D: a capable callee. REGISTER times: B, C, D for
	// first; D, C, B for last.
	mm, es := newMemMesh(t, 4, 1, nil)
	at := map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 3 * time.Second}
	if policy == "last" {
		at[1], at[3] = at[3], at[1]
	}
	for i, d := range at {
		es[i].clock.add(d)
	}
	b := es[1].joinWith(proto.JSON, pptFeatures())
	b.register("com.stream", map[string]any{"invoke": policy})
	if ppt {
		plainRoles = allFeatures // progressive invocations, not payload passthru
	}
	plain := es[2].joinWith(proto.JSON, plainRoles)
	plain.register("com.stream", map[string]any{"invoke": policy})
	d := es[3].joinWith(proto.JSON, pptFeatures())
	d.register("com.stream", map[string]any{"invoke": policy})
	mm.sync()
	caller := es[0].joinWith(proto.JSON, pptFeatures())
	mm.sync()
	// B's callee leaves; A does not know yet (the directory
	// change is held).
	mm.mu.Lock()
	mm.hold = true
	mm.mu.Unlock()
	b.drop()
	mm.sync()
	// C's dispatcher is held, so that the call (if it goes
	// there) has not been refused when the second chunk is sent.
	gate := make(chan struct{})
	mm.nodes[2].q <- func() { <-gate }
	req := caller.nextReq()
	chunk := func(i int) {
		o := map[string]any{}
		if i == 0 {
			o["progress"] = true
		}
		if ppt {
			o["ppt_scheme"] = "x_custom"
		}
		caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(o), URI: []byte("com.stream"), Args: raw(t, proto.JSON, []any{i})})
	}
	chunk(0)              // to B
	mm.syncNodes(0, 1, 3) // B sends it back; A sends it on
	chunk(1)
	mm.syncNodes(0, 1, 3)
	close(gate)
	mm.release()
	mm.sync()
	select {
	case m := <-caller.peer.in:
		t.Fatalf("the caller got %s: want its call given to D's callee", describe(m))
	default:
	}
	var inv *proto.Message
	for i := range 2 {
		inv = d.expect(proto.CodeInvocation)
		if v := argsOf(inv)[0].(int64); v != int64(i) {
			t.Fatalf("chunk %d of the call: got %d", i, v)
		}
	}
	d.yield(inv.Request, nil, []any{"ok"})
	mm.sync()
	caller.expect(proto.CodeResult)
	plain.quiet()
}
