package route

import (
	"maps"
	"runtime"
	"strconv"
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

// A session's tables of its subscriptions and registrations (Session.subs,
// Session.regs), and the realm's by id (subByID, regByID) and by URI (its
// tables' exact maps), give back what a peak grew them to once they are
// emptied: one session that subscribed to 65,536 topics (the default
// limits.subscriptions) and unsubscribed from them all left 10.8 MiB held
// (its table 5.0, the realm's 2.3 and 3.3), 9.1 MiB for as many
// registrations; at 32,768 here, 5.4 and 4.6 MiB.
func TestSessionSubscriptionTablesShrinkAfterPeak(t *testing.T) {
	const n = 32768
	for _, tc := range []struct {
		name         string
		add, drop    proto.Code
		added, ended proto.Code
	}{
		{"subscriptions", proto.CodeSubscribe, proto.CodeUnsubscribe, proto.CodeSubscribed, proto.CodeUnsubscribed},
		{"registrations", proto.CodeRegister, proto.CodeUnregister, proto.CodeRegistered, proto.CodeUnregistered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			c := e.joinOnInbox(0, n+16)
			other := e.joinOn(1, proto.JSON) // holds one of each, on another shard, throughout
			other.subscribe("com.uri.kept", nil)
			other.register("com.uri.kept", nil)
			h0 := heapLive()
			msgs := make([]*proto.Message, n)
			for i := range msgs {
				msgs[i] = &proto.Message{Type: tc.add, Request: c.nextReq(), Dict: c.opts(nil), URI: []byte("com.uri.u" + strconv.Itoa(i))}
			}
			c.publishAll(c.encodeAll(msgs))
			for i := range msgs {
				m := c.expect(tc.added)
				msgs[i] = &proto.Message{Type: tc.drop, Request: c.nextReq(), ID: m.ID}
			}
			c.publishAll(c.encodeAll(msgs))
			for range msgs {
				c.expect(tc.ended)
			}
			msgs = nil
			held := heapLive() - h0
			t.Logf("after %d %s were made and dropped: %d KiB still held", n, tc.name, held>>10)
			if held > 1<<20 {
				t.Errorf("after %d %s were made and dropped by one session, %d KiB are still held, want at most 1 MiB", n, tc.name, held>>10)
			}
			// The tables still work: the other session's entries are found.
			c.publish("com.uri.kept", map[string]any{"acknowledge": true}, nil, nil)
			c.expect(proto.CodePublished)
			other.expect(proto.CodeEvent)
			req := c.call("com.uri.kept", nil, nil, nil)
			other.yield(other.expect(proto.CodeInvocation).Request, nil, nil)
			if m := c.expect(proto.CodeResult); m.Request != req {
				t.Fatalf("RESULT for %d, want %d", m.Request, req)
			}
			c.subscribe("com.uri.u1", nil)
			c.register("com.uri.u1", nil)
		})
	}
}

// The router's table of sessions by id (Router.sessions), the realm's of
// its members and the shard's of its sessions with a transport
// (Shard.attached) give back what a crowd of sessions grew them to once
// it has left: 32,768 sessions that joined and left (a few addresses'
// worth: one may hold max_connections_per_address, 1,024) left 3.5 MiB
// held, 1.1 each, for the life of the router.
func TestSessionTablesShrinkAfterCrowdLeaves(t *testing.T) {
	const n = 32768
	e := newEnv(t, 1, nil)
	kept := e.join(proto.JSON)
	hello := kept.encodeAll([]*proto.Message{{Type: proto.CodeHello, URI: []byte("realm1"), Dict: kept.opts(map[string]any{"roles": map[string]any{"caller": map[string]any{}}})}})[0]
	sh, x := e.r.Shard(0), e.execs[0]
	h0 := heapLive()
	crowd := make([]*Session, 0, n)
	for range n / 1024 { // in turns of 1,024: under -race a turn of all of them took longer than do waits
		x.do(func() {
			for range 1024 {
				p := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 2), sh: sh, exec: x, remote: "crowd"}
				ss := sh.Open(p)
				p.sess = ss
				sh.Receive(ss, hello)
				if m := <-p.in; m.Type != proto.CodeWelcome {
					panic("no WELCOME for a session of the crowd: " + m.Type.String())
				}
				crowd = append(crowd, ss)
			}
		})
	}
	for k := 0; k < n; k += 1024 {
		x.do(func() {
			for _, ss := range crowd[k : k+1024] {
				ss.peer.(*testPeer).closed.Store(true)
				sh.Detach(ss)
			}
		})
	}
	crowd = nil
	e.advance(2 * e.r.cfg.HelloTimeout) // their HELLO timers fire, and let them go
	held := heapLive() - h0
	t.Logf("after %d sessions joined and left: %d KiB still held", n, held>>10)
	if held > 1<<20 {
		t.Errorf("after %d sessions joined and left, %d KiB are still held, want at most 1 MiB", n, held>>10)
	}
	if c := e.r.SessionCount(); c != 1 {
		t.Fatalf("%d sessions, want the one kept", c)
	}
	kept.call("wamp.session.count", nil, nil, nil)
	if m := kept.expect(proto.CodeResult); argsOf(m)[0] != int64(1) {
		t.Fatalf("wamp.session.count answers %v, want 1", argsOf(m))
	}
}

// The budgets' tables of owners (the calls in flight's, Router.calls.by;
// the subscriptions' bytes', Router.subBytes.by, one testamentBudget as
// the registrations' and testaments' are) give back what a crowd of
// owners grew them to once it has left: 32,768 sessions from as many
// addresses, each subscribed and having called once, left 3.5 MiB held
// after they left (the calls' table was reported before, estimated; the
// others were not).
func TestBudgetOwnerTablesShrinkAfterCrowdLeaves(t *testing.T) {
	const n = 32768
	e := newEnv(t, 1, nil)
	kept := e.join(proto.JSON)
	kept.subscribe("com.crowd", nil)
	msgs := kept.encodeAll([]*proto.Message{
		{Type: proto.CodeHello, URI: []byte("realm1"), Dict: kept.opts(map[string]any{"roles": map[string]any{"caller": map[string]any{}, "subscriber": map[string]any{}}})},
		{Type: proto.CodeSubscribe, Request: 1, Dict: kept.opts(nil), URI: []byte("com.crowd")},
		{Type: proto.CodeCall, Request: 2, Dict: kept.opts(nil), URI: []byte("com.nobody")},
	})
	sh, x := e.r.Shard(0), e.execs[0]
	h0 := heapLive()
	crowd := make([]*Session, 0, n)
	for k := range n / 1024 { // in turns of 1,024: under -race a turn of all of them took longer than do waits
		x.do(func() {
			for i := k * 1024; i < (k+1)*1024; i++ {
				p := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 4), sh: sh, exec: x, remote: "crowd-" + strconv.Itoa(i)}
				ss := sh.Open(p)
				p.sess = ss
				for k, want := range []proto.Code{proto.CodeWelcome, proto.CodeSubscribed, proto.CodeError} {
					sh.Receive(ss, msgs[k])
					if m := <-p.in; m.Type != want {
						panic("a session of the crowd got " + m.Type.String() + ", want " + want.String())
					}
				}
				crowd = append(crowd, ss)
			}
		})
	}
	for k := 0; k < n; k += 1024 {
		x.do(func() {
			for _, ss := range crowd[k : k+1024] {
				ss.peer.(*testPeer).closed.Store(true)
				sh.Detach(ss)
			}
		})
	}
	crowd = nil
	e.advance(2 * e.r.cfg.HelloTimeout)
	held := heapLive() - h0
	t.Logf("after %d sessions of as many owners subscribed, called and left: %d KiB still held", n, held>>10)
	if held > 1<<20 {
		t.Errorf("after %d sessions of as many owners subscribed, called and left, %d KiB are still held, want at most 1 MiB", n, held>>10)
	}
	pub := e.join(proto.JSON)
	pub.publish("com.crowd", nil, []any{"still"}, nil)
	if m := kept.expect(proto.CodeEvent); argsOf(m)[0] != "still" {
		t.Fatalf("EVENT %v", argsOf(m))
	}
}

// A shard's tables of its calls to other nodes' callees (Shard.mcalls)
// and of other nodes' calls to its callees (Shard.minvs) give back what a
// peak of calls across the mesh grew them to once the calls end: after
// four callers had 4,096 calls each in flight to a callee on another node
// (each caller's limits.calls_in_flight on other nodes), all answered but
// one each, the two tables held 853 and 1,281 KiB for the node's life
// (measured as what the heap gives back when they are replaced by copies
// of what they hold).
func TestMeshCallTablesShrinkAfterPeak(t *testing.T) {
	const per = 4096
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].joinOnInbox(0, 4*per+16)
	callee.register("com.p", nil)
	var callers []*tc
	for range 4 {
		callers = append(callers, es[0].joinOnInbox(0, per+16))
	}
	mm.sync()
	kept := callRound(t, callee, callers, per)
	mm.sync()
	// What the tables hold: the heap they give back when replaced by
	// copies of what they hold (the kept calls).
	h0 := heapLive()
	for i, e := range es {
		s := e.r.Shard(0)
		e.execs[0].do(func() {
			if i == 0 {
				c := make(map[uint64]mcall, len(s.mcalls))
				maps.Copy(c, s.mcalls)
				s.mcalls = c
			} else {
				c := make(map[minvKey]minv, len(s.minvs))
				maps.Copy(c, s.minvs)
				s.minvs = c
			}
		})
	}
	held := h0 - heapLive()
	t.Logf("after %d calls across the mesh from each of %d callers, all but %d answered: the tables hold %d KiB", per, len(callers), len(kept), held>>10)
	if held > 256<<10 {
		t.Errorf("after %d calls across the mesh from each of %d callers, all but %d answered, the tables of calls across the mesh hold %d KiB, want at most 256", per, len(callers), len(kept), held>>10)
	}
	for _, inv := range kept {
		callee.yield(inv, nil, []any{"late"})
	}
	for _, c := range callers {
		if m := c.expect(proto.CodeResult); len(argsOf(m)) != 1 {
			t.Fatalf("a kept call's RESULT has %v", argsOf(m))
		}
	}
}
