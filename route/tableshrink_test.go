package route

import (
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// joinOnInbox joins realm1 on shard i with an inbox of n messages (the
// test peer's default, 4,096, panics when a session is sent more).
func (e *env) joinOnInbox(i, n int) *tc {
	c := e.connectOn(i, proto.JSON)
	c.peer.in = make(chan *proto.Message, n)
	c.hello("realm1", allFeatures, nil)
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

// callRound has each caller send per CALLs to com.p in one turn of its
// shard (Arguments [caller, i]), and callee answer all but the last of
// each caller's; it returns the invocation ids left unanswered.
func callRound(t *testing.T, callee *tc, callers []*tc, per int) (kept []uint64) {
	t.Helper()
	for k, c := range callers {
		calls := make([]*proto.Message, per)
		for i := range calls {
			calls[i] = &proto.Message{Type: proto.CodeCall, Request: c.nextReq(), Dict: c.opts(nil), URI: []byte("com.p"), Args: raw(t, proto.JSON, []any{k, i})}
		}
		c.publishAll(c.encodeAll(calls))
	}
	yields := make([]*proto.Message, 0, per*len(callers))
	for range per * len(callers) {
		inv := callee.expect(proto.CodeInvocation)
		if a := argsOf(inv); len(a) == 2 && a[1] == int64(per-1) {
			kept = append(kept, inv.Request)
			continue
		}
		yields = append(yields, &proto.Message{Type: proto.CodeYield, Request: inv.Request, Dict: callee.opts(nil)})
	}
	callee.publishAll(callee.encodeAll(yields))
	for _, c := range callers {
		for range per - 1 {
			c.expect(proto.CodeResult)
		}
	}
	return kept
}

// A session's table of its calls in flight (Session.calls) and a
// callee's of its invocations (Session.invs) give back what a peak of
// calls grew them to once the calls end: Go maps never shrink, so four
// callers that had 16,384 calls each in flight to one callee, all
// answered but one each, left their five maps' tables held for the
// sessions' lives, counted in no bound (3,506 KiB after a warm-up round
// of 2,048 calls each), and every session may do it.
func TestSessionCallTablesShrinkAfterPeak(t *testing.T) {
	const per = 16384
	e := newEnv(t, 2, nil)
	callee := e.joinOnInbox(1, 4*per+16)
	callee.register("com.p", nil)
	var callers []*tc
	for range 4 {
		callers = append(callers, e.joinOnInbox(0, per+16))
	}
	// A small round first, answered whole: the shards' free lists and
	// mailboxes take the sizes they keep.
	for _, inv := range callRound(t, callee, callers, 2048) {
		callee.yield(inv, nil, nil)
	}
	for _, c := range callers {
		c.expect(proto.CodeResult)
	}
	h0 := heapLive()
	kept := callRound(t, callee, callers, per)
	// A few turns of one call each, as a quiet session has.
	for range 4 {
		callers[0].call("com.p", nil, nil, nil)
		callee.yield(callee.expect(proto.CodeInvocation).Request, nil, nil)
		callers[0].expect(proto.CodeResult)
	}
	held := heapLive() - h0
	t.Logf("after %d calls in flight from each of %d callers, all but %d answered: %d KiB still held", per, len(callers), len(kept), held>>10)
	if held > 512<<10 {
		t.Errorf("after %d calls in flight from each of %d callers, all but %d answered, %d KiB are still held, want at most 512", per, len(callers), len(kept), held>>10)
	}
	// The calls still in flight are kept: their answers reach the callers.
	for _, inv := range kept {
		callee.yield(inv, nil, []any{"late"})
	}
	for _, c := range callers {
		if m := c.expect(proto.CodeResult); len(argsOf(m)) != 1 {
			t.Fatalf("a kept call's RESULT has %v", argsOf(m))
		}
	}
	runtime.KeepAlive(callers)
}
