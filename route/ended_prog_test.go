package route

import (
	"strconv"
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

// TestReloadEndsFinalChunkForgetsID: the final chunk of a progressive call
// invocation that a reload's re-check has not come to yet, met by the
// reload's new grants (the caller may no longer call the procedure), ends
// the call; the call is then answered, so its request id is not kept
// among the session's ended progressive calls. It was (the chunk ended
// the call before it was marked final): a later CALL that reused the id,
// a new call, was dropped as a chunk of the ended one.
func TestReloadEndsFinalChunkForgetsID(t *testing.T) {
	rbac := func(role string, perms ...Permission) Authorizer {
		z, err := NewRBAC([]Role{{Name: role, Permissions: perms}})
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	all := Permission{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Subscribe: true, Publish: true}
	realms := func(fillerDeny, userDeny bool) []RealmConfig {
		f := []Permission{all}
		if fillerDeny {
			f = append(f, Permission{URI: "com.filler.no.", Match: proto.MatchPrefix})
		}
		u := []Permission{all}
		if userDeny {
			u = append(u, Permission{URI: "com.upload", Register: true})
		}
		return []RealmConfig{
			{Name: "realm1", Anonymous: true, Authorizer: rbac("anonymous", u...)},
			{Name: "realm2", Anonymous: true, Authorizer: rbac("anonymous", f...)},
		}
	}
	e := newEnv(t, 1, func(c *Config) { c.Realms = realms(false, false) })
	// A filler whose re-check takes more than one turn, so that the
	// caller's, queued by a second reload, waits behind it.
	filler := e.connect(proto.JSON)
	filler.hello("realm2", allFeatures, nil)
	filler.id = filler.expect(proto.CodeWelcome).ID
	for i := 0; i < recheckTurn+1; i += 1024 {
		var reqs []uint64
		for j := i; j < i+1024 && j < recheckTurn+1; j++ {
			reqs = append(reqs, filler.nextReq())
			filler.send(&proto.Message{Type: proto.CodeSubscribe, Request: reqs[len(reqs)-1], Dict: filler.opts(nil), URI: []byte("com.filler.t" + strconv.Itoa(j))})
		}
		for range reqs {
			if m := filler.recv(); m.Type != proto.CodeSubscribed {
				t.Fatalf("got %v", m.Type)
			}
		}
	}
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.upload", nil)
	callee.register("com.echo", nil)
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 1)
	callee.expect(proto.CodeInvocation)

	sh := e.r.shards[0]
	held := make(chan func(), 4)
	e.execs[0].do(func() { sh.recheckPost = func(next func()) { held <- next } })
	if err := e.r.Reload(realms(true, false)); err != nil { // the filler's re-check, its next turn held
		t.Fatal(err)
	}
	e.sync()
	if err := e.r.Reload(realms(true, true)); err != nil { // the caller's, queued behind it
		t.Fatal(err)
	}
	e.sync()
	var pending bool
	e.execs[0].do(func() { pending = caller.sess.recheck != nil && caller.sess.calls[req] != nil })
	if !pending {
		t.Fatal("the caller's re-check is not pending with its call")
	}
	// The final chunk meets the new grants.
	caller.callChunk(req, "com.upload", false, 2)
	caller.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	callee.expect(proto.CodeInterrupt)
	// The id, reused for a new call, makes one.
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.echo")})
	e.sync()
	if len(callee.peer.in) == 0 {
		t.Fatal("a new CALL reusing the id of the call the final chunk ended was dropped, as a chunk of that call")
	}
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT for %d, want %d", m.Request, req)
	}
	for len(held) > 0 {
		e.execs[0].do(<-held)
	}
	caller.quiet()
	callee.quiet()
}
