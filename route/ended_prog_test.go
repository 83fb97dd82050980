package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestLateChunksOfManyEndedProgressiveCalls: more than 8 progressive call
// invocations of one caller that end at once (their callee leaves)
// leave chunks on their way, which the caller sent before it had its
// ERRORs. They are dropped, whichever call they belong to. Before, only
// the last 8 ended calls were remembered: a late chunk of an older one
// was taken for a new call and reached the new callee as an INVOCATION
// of its own, starting mid-stream. The late YIELDs of a callee whose
// invocations ended are dropped as they always were (no ABORT).
func TestLateChunksOfManyEndedProgressiveCalls(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.upload", nil)
	const n = 40
	reqs := make([]uint64, n)
	invs := make([]uint64, n)
	for i := range reqs {
		reqs[i] = caller.nextReq()
		caller.callChunk(reqs[i], "com.upload", true, 1)
		invs[i] = callee.expect(proto.CodeInvocation).Request
	}
	// The callee's late YIELDs after its invocations were canceled.
	for _, r := range reqs {
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: r, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
		caller.expectError(proto.CodeCall, r, proto.URICanceled)
		callee.expect(proto.CodeInterrupt)
	}
	for _, inv := range invs {
		callee.yield(inv, map[string]any{"progress": true}, []any{"late"})
		callee.yield(inv, nil, []any{"late"})
	}
	callee.quiet()
	caller.quiet()

	// Another set of calls, ended by their callee's leaving.
	for i := range reqs {
		reqs[i] = caller.nextReq()
		caller.callChunk(reqs[i], "com.upload", true, 1)
		callee.expect(proto.CodeInvocation)
	}
	callee.drop()
	for range reqs {
		if m := caller.expect(proto.CodeError); string(m.URI) != proto.URICanceled {
			t.Fatalf("got ERROR %s", describe(m))
		}
	}
	next := e.join(proto.JSON)
	next.register("com.upload", nil)
	for _, r := range reqs {
		caller.callChunk(r, "com.upload", true, 2)
		caller.callChunk(r, "com.upload", false, 3)
	}
	e.sync()
	select {
	case m := <-next.peer.in:
		t.Fatalf("a late chunk of an ended call reached the new callee: %v %s", m.Type, describe(m))
	default:
	}
	next.quiet()
	caller.quiet()
}

// TestEndedProgressiveBounded: the remembered ended calls stay within
// maxEndedProg, oldest forgotten first, and are let go once each has had
// its final chunk.
func TestEndedProgressiveBounded(t *testing.T) {
	ss := &Session{}
	const n = 3*maxEndedProg + 7
	for r := uint64(1); r <= n; r++ {
		ss.rememberEnded(r)
	}
	if len(ss.ended.ids) != maxEndedProg || len(ss.ended.ring) != maxEndedProg {
		t.Fatalf("%d ids, ring of %d: want %d", len(ss.ended.ids), len(ss.ended.ring), maxEndedProg)
	}
	if ss.endedProgressive(n-maxEndedProg, false) || !ss.endedProgressive(n-maxEndedProg+1, false) {
		t.Fatal("the oldest kept is not the last maxEndedProg")
	}
	for r := uint64(n - maxEndedProg + 1); r <= n; r++ {
		if !ss.endedProgressive(r, true) {
			t.Fatalf("%d forgotten", r)
		}
	}
	if ss.ended != nil {
		t.Fatal("nothing remembered, yet the set is kept")
	}
}

// An id forgotten by its final chunk and remembered again (a client that
// reuses request ids) keeps its new place: the old place, when its turn
// to go comes, does not take the id with it (it did, found by the review
// of the change: a reused id was forgotten long before the bound).
func TestEndedProgressiveReusedID(t *testing.T) {
	ss := &Session{}
	ss.rememberEnded(1)
	ss.rememberEnded(2) // keeps the set alive once 1 is forgotten
	ss.endedProgressive(1, true)
	ss.rememberEnded(1) // remembered again, at a newer place
	for r := uint64(100); r < 100+maxEndedProg-3; r++ {
		ss.rememberEnded(r) // the ring fills: 1's old place is the oldest
	}
	ss.rememberEnded(99) // pushes out the oldest place (1's old one)
	if !ss.endedProgressive(1, false) {
		t.Fatal("the reused id 1 was forgotten with its old place, before the bound")
	}
	if ss.endedProgressive(2, false) != true {
		t.Fatal("2 forgotten too early")
	}
}
