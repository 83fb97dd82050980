package route

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Call re-routing (WAMP §Call Re-Routing, reroute.go): a callee's ERROR
// wamp.error.unavailable sends the call to another callee of the shared
// registration; with none left the caller gets no_available_callee.

// unavailable answers the INVOCATION inv of c with wamp.error.unavailable
// and the payload args, kwargs.
func (c *tc) unavailable(inv uint64, args []any, kwargs map[string]any) {
	m := &proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv, Dict: c.opts(nil), URI: []byte(proto.URIUnavailable)}
	if args != nil {
		m.Args = raw(c.t, c.peer.ser, args)
	}
	if kwargs != nil {
		m.Kwargs = raw(c.t, c.peer.ser, kwargs)
	}
	c.send(m)
}

// invoked returns the callee of cs that has an INVOCATION waiting (after
// e.sync), and it; it fails when none or more than one has.
func invoked(t *testing.T, cs []*tc) (int, *proto.Message) {
	t.Helper()
	got, idx := (*proto.Message)(nil), -1
	for i, c := range cs {
		select {
		case m := <-c.peer.in:
			if m.Type != proto.CodeInvocation {
				t.Fatalf("callee %d got %v %s", i, m.Type, describe(m))
			}
			if got != nil {
				t.Fatalf("callees %d and %d both invoked", idx, i)
			}
			got, idx = m, i
		default:
		}
	}
	if got == nil {
		t.Fatal("no callee invoked")
	}
	return idx, got
}

// assertIdle checks that no shard of e holds a call or an invocation.
func assertIdle(t *testing.T, e *env) {
	t.Helper()
	e.sync()
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			if sh.traffic.callsInFlight != 0 || len(sh.mcalls) != 0 || len(sh.minvs) != 0 || sh.rerouteHeld != 0 {
				t.Errorf("shard %d: %d calls in flight, %d to other nodes, %d from them, %d bytes kept for rerouting",
					i, sh.traffic.callsInFlight, len(sh.mcalls), len(sh.minvs), sh.rerouteHeld)
			}
			for ss := range sh.attached {
				if len(ss.calls) != 0 || len(ss.invs) != 0 || ss.meshCalls != 0 {
					t.Errorf("session %d holds %d calls, %d invocations, %d mesh calls", ss.id, len(ss.calls), len(ss.invs), ss.meshCalls)
				}
			}
		})
	}
}

func TestRerouteByPolicy(t *testing.T) {
	// The first callee invoked, the one the call goes to next.
	want := map[string][2]int{"roundrobin": {0, 1}, "first": {0, 1}, "last": {2, 1}, "random": {-1, -1}}
	for _, policy := range []string{"roundrobin", "random", "first", "last"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			callees := []*tc{e.join(proto.JSON), e.join(proto.MsgPack), e.join(proto.CBOR)}
			for _, c := range callees {
				c.register("com.svc", map[string]any{"invoke": policy})
			}
			caller := e.join(proto.JSON)
			for round := 0; round < 3; round++ {
				req := caller.call("com.svc", nil, []any{"x", round}, map[string]any{"k": "v"})
				e.sync()
				first, inv := invoked(t, callees)
				callees[first].unavailable(inv.Request, []any{"busy"}, nil)
				e.sync()
				next, inv2 := invoked(t, callees)
				if next == first {
					t.Fatalf("the callee that answered unavailable got the call again")
				}
				if w := want[policy]; round == 0 && w[0] >= 0 && (first != w[0] || next != w[1]) {
					t.Fatalf("%s: callees %d then %d, want %d then %d", policy, first, next, w[0], w[1])
				}
				if a := argsOf(inv2); len(a) != 2 || a[0] != "x" || a[1] != int64(round) || kwargsOf(inv2)["k"] != "v" {
					t.Fatalf("rerouted INVOCATION payload %v %v", a, kwargsOf(inv2))
				}
				callees[next].yield(inv2.Request, nil, []any{"done"})
				if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != "done" {
					t.Fatalf("RESULT %s", describe(r))
				}
				// The first callee's late answers are dropped.
				callees[first].yield(inv.Request, nil, []any{"late"})
				caller.quiet()
			}
			if st := e.r.Stats(); st.CallsRerouted != 3 || st.CallsRerouteExhausted != 0 {
				t.Fatalf("stats rerouted %d exhausted %d, want 3 0", st.CallsRerouted, st.CallsRerouteExhausted)
			}
			assertIdle(t, e)
		})
	}
}

// Every callee answers unavailable: each gets the call once, and the
// caller gets no_available_callee with the last callee's payload.
func TestRerouteExhausted(t *testing.T) {
	e := newEnv(t, 2, nil)
	callees := []*tc{e.join(proto.JSON), e.join(proto.MsgPack), e.join(proto.CBOR)}
	for _, c := range callees {
		c.register("com.busy", map[string]any{"invoke": "roundrobin"})
	}
	caller := e.join(proto.MsgPack)
	req := caller.call("com.busy", nil, []any{1}, nil)
	seen := map[int]bool{}
	for i := 0; i < len(callees); i++ {
		e.sync()
		k, inv := invoked(t, callees)
		if seen[k] {
			t.Fatalf("callee %d got the call twice", k)
		}
		seen[k] = true
		callees[k].unavailable(inv.Request, []any{"busy", k}, map[string]any{"who": int64(k)})
	}
	m := caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	last := 0
	for k := range callees {
		if !seen[k] {
			t.Fatalf("callee %d never got the call", k)
		}
	}
	a := argsOf(m)
	if len(a) != 2 || a[0] != "busy" {
		t.Fatalf("no_available_callee args %v, want the last callee's", a)
	}
	last = int(a[1].(int64))
	if kwargsOf(m)["who"] != int64(last) {
		t.Fatalf("no_available_callee kwargs %v", kwargsOf(m))
	}
	for _, c := range callees {
		c.quiet()
	}
	if st := e.r.Stats(); st.CallsRerouted != 2 || st.CallsRerouteExhausted != 1 {
		t.Fatalf("stats rerouted %d exhausted %d, want 2 1", st.CallsRerouted, st.CallsRerouteExhausted)
	}
	assertIdle(t, e)
}

// A single registration, or a shared one with one callee, is not
// rerouted: the caller gets no_available_callee with the callee's payload.
func TestRerouteSingleCallee(t *testing.T) {
	for _, policy := range []string{"single", "roundrobin"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			callee, caller := e.join(proto.JSON), e.join(proto.CBOR)
			callee.register("com.one", map[string]any{"invoke": policy})
			req := caller.call("com.one", nil, nil, nil)
			inv := callee.expect(proto.CodeInvocation)
			callee.unavailable(inv.Request, []any{"not now"}, nil)
			m := caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
			if a := argsOf(m); len(a) != 1 || a[0] != "not now" {
				t.Fatalf("args %v", a)
			}
			callee.quiet()
			// Other errors pass as they are.
			req = caller.call("com.one", nil, nil, nil)
			inv = callee.expect(proto.CodeInvocation)
			callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil), URI: []byte("com.err")})
			caller.expectError(proto.CodeCall, req, "com.err")
			assertIdle(t, e)
		})
	}
}

// The payloads calls keep to be rerouted are bounded per shard: past
// maxRerouteHeld a call is not copied, and a callee's unavailable ends it
// with no_available_callee; the bytes go back as calls end.
func TestRerouteHeldBounded(t *testing.T) {
	e := newEnv(t, 1, nil)
	c1, c2 := e.join(proto.JSON), e.join(proto.JSON)
	c1.register("com.h", map[string]any{"invoke": "first"})
	c2.register("com.h", map[string]any{"invoke": "first"})
	caller := e.join(proto.JSON)
	sh := e.r.Shard(0)
	big := strings.Repeat("x", 64<<10)
	var held int64
	req := caller.call("com.h", nil, []any{big}, nil)
	inv := c1.expect(proto.CodeInvocation)
	e.execs[0].do(func() { held = sh.rerouteHeld })
	if held < 64<<10 {
		t.Fatalf("a call of 64 KiB holds %d bytes for rerouting", held)
	}
	// The shard's budget nearly used up: the next call is not kept.
	e.execs[0].do(func() { sh.rerouteHeld += maxRerouteHeld - held - 1024 })
	req2 := caller.call("com.h", nil, []any{big}, nil)
	inv2 := c1.expect(proto.CodeInvocation)
	c1.unavailable(inv2.Request, nil, nil)
	caller.expectError(proto.CodeCall, req2, proto.URINoAvailableCallee)
	c2.quiet()
	e.execs[0].do(func() { sh.rerouteHeld -= maxRerouteHeld - held - 1024 })
	// The first one still reroutes.
	c1.unavailable(inv.Request, nil, nil)
	inv = c2.expect(proto.CodeInvocation)
	c2.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT %s", describe(m))
	}
	assertIdle(t, e)
}

// One session's calls keep at most its share of the shard's reroute
// budget (past its first): before, one caller's calls to callees that
// never answer took all 32 MiB, and no other caller on the shard had a
// call rerouted (its callee's unavailable ended it no_available_callee
// with another callee free). Its bytes go back when it leaves.
func TestRerouteHeldPerSession(t *testing.T) {
	e := newEnv(t, 2, nil)
	join := func(i int) *tc {
		c := e.connectOn(i, proto.JSON)
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	g1, g2, x1, x2 := join(1), join(1), join(1), join(1)
	g1.register("com.good", map[string]any{"invoke": "first"})
	g2.register("com.good", map[string]any{"invoke": "first"})
	x1.register("com.stuck", map[string]any{"invoke": "roundrobin"})
	x2.register("com.stuck", map[string]any{"invoke": "roundrobin"})
	h := join(0)
	big := strings.Repeat("x", 256<<10)
	for range 140 { // 35 MiB; x1 and x2 never answer
		h.call("com.stuck", nil, []any{big}, nil)
	}
	e.sync()
	sh := e.r.Shard(0)
	var held int64
	e.execs[0].do(func() { held = sh.rerouteHeld })
	if held > rerouteShare {
		t.Fatalf("one session's calls keep %d bytes for rerouting, its share is %d", held, rerouteShare)
	}
	caller := join(0)
	req := caller.call("com.good", nil, []any{"innocent"}, nil)
	inv := g1.expect(proto.CodeInvocation)
	g1.unavailable(inv.Request, nil, nil)
	inv = g2.expect(proto.CodeInvocation)
	g2.yield(inv.Request, nil, []any{"ok"})
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT %s", describe(m))
	}
	x1.drop()
	x2.drop()
	h.drop()
	e.sync()
	e.execs[0].do(func() { held = sh.rerouteHeld })
	if held != 0 {
		t.Fatalf("%d bytes still kept after the session left", held)
	}
	// A first call larger than the share is still kept.
	huge := strings.Repeat("y", rerouteShare+1)
	req = caller.call("com.good", nil, []any{huge}, nil)
	inv = g1.expect(proto.CodeInvocation)
	g1.unavailable(inv.Request, nil, nil)
	inv = g2.expect(proto.CodeInvocation)
	g2.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT %s", describe(m))
	}
}

// A call is offered to at most maxCallTries callees.
func TestRerouteBounded(t *testing.T) {
	e := newEnv(t, 2, nil)
	var callees []*tc
	for i := 0; i < maxCallTries+5; i++ {
		c := e.join(proto.JSON)
		c.register("com.many", map[string]any{"invoke": "random"})
		callees = append(callees, c)
	}
	caller := e.join(proto.JSON)
	req := caller.call("com.many", nil, nil, nil)
	seen := map[int]bool{}
	for i := 0; i < maxCallTries; i++ {
		e.sync()
		k, inv := invoked(t, callees)
		if seen[k] {
			t.Fatalf("callee %d got the call twice", k)
		}
		seen[k] = true
		callees[k].unavailable(inv.Request, nil, nil)
	}
	caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	e.sync()
	for i, c := range callees {
		if len(c.peer.in) != 0 {
			t.Fatalf("callee %d invoked past %d tries", i, maxCallTries)
		}
	}
	assertIdle(t, e)
}

// What the caller asked for reaches the next callee: disclosure, progressive
// results, the procedure of a pattern registration, the rest of the timeout
// (counted from the CALL), pass-through keys; across shards.
func TestRerouteCarriesOptions(t *testing.T) {
	e := newEnv(t, 3, nil)
	a, b := e.connectOn(0, proto.JSON), e.connectOn(1, proto.MsgPack)
	for _, c := range []*tc{a, b} {
		c.hello("realm1", pptFeatures(), nil) // payload_passthru_mode: the call has ppt_scheme
		c.id = c.expect(proto.CodeWelcome).ID
		c.register("com.pat.", map[string]any{"match": "prefix", "invoke": "first", "forward_timeout": true})
	}
	caller := e.connectOn(2, proto.CBOR)
	caller.hello("realm1", pptFeatures(), nil)
	caller.id = caller.expect(proto.CodeWelcome).ID
	req := caller.call("com.pat.x", map[string]any{"disclose_me": true, "receive_progress": true, "timeout": 1000, "ppt_scheme": "x_custom"}, []any{7}, nil)
	inv := a.expect(proto.CodeInvocation)
	e.advance(600 * time.Millisecond)
	a.unavailable(inv.Request, nil, nil)
	inv = b.expect(proto.CodeInvocation)
	if got := inv.Opt.String(proto.KeyProcedure); got != "com.pat.x" {
		t.Fatalf("procedure %q", got)
	}
	if inv.Opt.Uint(proto.KeyCaller) != caller.id || !inv.Opt.Bool(proto.KeyReceiveProgress, false) {
		t.Fatalf("caller %d receive_progress %v", inv.Opt.Uint(proto.KeyCaller), inv.Opt.Bool(proto.KeyReceiveProgress, false))
	}
	if ms := inv.Opt.Uint(proto.KeyTimeout); ms == 0 || ms > 400+uint64(clockTick/time.Millisecond) {
		t.Fatalf("forwarded timeout %d ms, want the rest of 1000 after 600", ms)
	}
	if s := string(inv.Opt.Str(proto.KeyPPTScheme)); s != "x_custom" {
		t.Fatalf("ppt_scheme %q", s)
	}
	if a := argsOf(inv); len(a) != 1 || a[0] != int64(7) {
		t.Fatalf("args %v", a)
	}
	// The timeout runs from the CALL: 1000 ms, not 600 + 1000.
	e.advance(500 * time.Millisecond)
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
	b.expect(proto.CodeInterrupt)
	assertIdle(t, e)
}

// Not rerouted: after progressive results, after further chunks of a
// progressive invocation, after a kill cancel.
func TestRerouteNotWhenUnderway(t *testing.T) {
	setup := func(t *testing.T) (*env, *tc, *tc, *tc) {
		e := newEnv(t, 2, nil)
		c1, c2 := e.join(proto.JSON), e.join(proto.JSON)
		c1.register("com.p", map[string]any{"invoke": "first"})
		c2.register("com.p", map[string]any{"invoke": "first"})
		return e, c1, c2, e.join(proto.JSON)
	}
	t.Run("progressive results", func(t *testing.T) {
		e, c1, c2, caller := setup(t)
		req := caller.call("com.p", map[string]any{"receive_progress": true}, nil, nil)
		inv := c1.expect(proto.CodeInvocation)
		c1.yield(inv.Request, map[string]any{"progress": true}, []any{1})
		caller.expect(proto.CodeResult)
		c1.unavailable(inv.Request, nil, nil)
		caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
		c2.quiet()
		assertIdle(t, e)
	})
	t.Run("progressive invocation", func(t *testing.T) {
		e, c1, c2, caller := setup(t)
		// Only the first chunk sent: rerouted with it.
		req := caller.nextReq()
		caller.callChunk(req, "com.p", true, 1)
		inv := c1.expect(proto.CodeInvocation)
		c1.unavailable(inv.Request, nil, nil)
		inv = c2.expect(proto.CodeInvocation)
		if !inv.Opt.Bool(proto.KeyProgress, false) || argsOf(inv)[0] != int64(1) {
			t.Fatalf("rerouted first chunk %s", describe(inv))
		}
		caller.callChunk(req, "com.p", false, 2) // the rest follows it
		if m := c2.expect(proto.CodeInvocation); m.Request != inv.Request || argsOf(m)[0] != int64(2) {
			t.Fatalf("second chunk %s", describe(m))
		}
		c2.unavailable(inv.Request, nil, nil) // it has two chunks: not rerouted
		caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
		c1.quiet()
		assertIdle(t, e)
	})
	t.Run("kill", func(t *testing.T) {
		e, c1, c2, caller := setup(t)
		req := caller.call("com.p", nil, nil, nil)
		inv := c1.expect(proto.CodeInvocation)
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
		c1.expect(proto.CodeInterrupt)
		c1.unavailable(inv.Request, nil, nil)
		caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
		c2.quiet()
		assertIdle(t, e)
	})
}

// The caller cancels or leaves, or the next callee leaves, once the call
// was rerouted: the call ends as any other, nothing is left behind.
func TestRerouteThenCancelOrLeave(t *testing.T) {
	setup := func(t *testing.T) (*env, []*tc, *tc, uint64, int, *proto.Message) {
		e := newEnv(t, 3, nil)
		cs := []*tc{e.join(proto.JSON), e.join(proto.MsgPack), e.join(proto.CBOR)}
		for _, c := range cs {
			c.register("com.q", map[string]any{"invoke": "roundrobin"})
		}
		caller := e.join(proto.JSON)
		req := caller.call("com.q", nil, nil, nil)
		e.sync()
		k, inv := invoked(t, cs)
		cs[k].unavailable(inv.Request, nil, nil)
		e.sync()
		k, inv = invoked(t, cs)
		return e, cs, caller, req, k, inv
	}
	t.Run("cancel", func(t *testing.T) {
		e, cs, caller, req, k, inv := setup(t)
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
		if m := cs[k].expect(proto.CodeInterrupt); m.Request != inv.Request {
			t.Fatalf("INTERRUPT %s for invocation %d", describe(m), inv.Request)
		}
		cs[k].unavailable(inv.Request, nil, nil) // too late: dropped
		caller.quiet()
		assertIdle(t, e)
	})
	t.Run("caller leaves", func(t *testing.T) {
		e, cs, caller, _, k, inv := setup(t)
		caller.drop()
		if m := cs[k].expect(proto.CodeInterrupt); m.Request != inv.Request {
			t.Fatalf("INTERRUPT %s", describe(m))
		}
		cs[k].unavailable(inv.Request, nil, nil)
		e.sync()
		for _, c := range cs {
			c.quiet()
		}
		assertIdle(t, e)
	})
	t.Run("callee leaves", func(t *testing.T) {
		e, cs, caller, req, k, _ := setup(t)
		cs[k].drop()
		caller.expectError(proto.CodeCall, req, proto.URICanceled)
		assertIdle(t, e)
	})
}

// A callee that is gone when the call reaches its shard counts as
// unavailable: the call goes on to the next one.
func TestRerouteCalleeGoneBeforeDelivery(t *testing.T) {
	e := newEnv(t, 1, nil)
	c1, c2 := e.join(proto.JSON), e.join(proto.JSON)
	c1.register("com.g", map[string]any{"invoke": "first"})
	c2.register("com.g", map[string]any{"invoke": "first"})
	caller := e.join(proto.JSON)
	var req uint64
	// One turn of the shard: c1 leaves, then the CALL runs while c1 is
	// still in the registration's list but no longer established.
	c1.exec.do(func() {
		c1.sess.state = stClosing
		req = caller.nextReq()
		b, _ := caller.enc.Append(nil, proto.JSON, &proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.g")})
		caller.sh.Receive(caller.sess, b)
	})
	inv := c2.expect(proto.CodeInvocation)
	c2.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT %s", describe(m))
	}
}

// Across the mesh: a callee on another node answering unavailable sends
// the call back to the caller's node, which offers it to an untried
// callee, here or on any node; a node with several callees is told which
// of them the call already tried.
func TestMeshReroute(t *testing.T) {
	mm, es := newMemMesh(t, 3, 2, nil)
	// Two callees on B, one on C, none on A (the caller's node).
	b1, b2 := es[1].join(proto.JSON), es[1].join(proto.CBOR)
	c1 := es[2].join(proto.MsgPack)
	callees := []*tc{b1, b2, c1}
	for _, c := range callees {
		c.register("com.m", map[string]any{"invoke": "roundrobin", "disclose_caller": true})
	}
	mm.sync()
	caller := es[0].join(proto.JSON)
	for round := 0; round < 4; round++ {
		// Everyone but the last one asked refuses.
		req := caller.call("com.m", nil, []any{round}, nil)
		seen := map[int]bool{}
		for i := 0; ; i++ {
			mm.sync()
			k, inv := invoked(t, callees)
			if seen[k] {
				t.Fatalf("round %d: callee %d got the call twice", round, k)
			}
			seen[k] = true
			if a := argsOf(inv); len(a) != 1 || a[0] != int64(round) || inv.Opt.Uint(proto.KeyCaller) != caller.id {
				t.Fatalf("INVOCATION %s caller %d", describe(inv), inv.Opt.Uint(proto.KeyCaller))
			}
			if i == len(callees)-1 {
				callees[k].yield(inv.Request, nil, []any{"ok"})
				break
			}
			callees[k].unavailable(inv.Request, nil, nil)
		}
		if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != "ok" {
			t.Fatalf("RESULT %s", describe(r))
		}
	}
	// All refuse: no_available_callee with the last one's payload.
	req := caller.call("com.m", nil, nil, nil)
	for i := 0; i < len(callees); i++ {
		mm.sync()
		k, inv := invoked(t, callees)
		callees[k].unavailable(inv.Request, []any{"no", int64(k)}, nil)
	}
	m := caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	if a := argsOf(m); len(a) != 2 || a[0] != "no" {
		t.Fatalf("args %v", a)
	}
	mm.sync()
	for _, c := range callees {
		c.quiet()
	}
	if st := es[0].r.Stats(); st.CallsRerouted != 4*2+2 || st.CallsRerouteExhausted != 1 {
		t.Fatalf("A's stats: rerouted %d exhausted %d", st.CallsRerouted, st.CallsRerouteExhausted)
	}
	assertNothingPending(t, mm)
	for _, e := range es {
		assertIdle(t, e)
	}
}

// A local callee refusing sends the call to another node, and back: the
// caller's node switches between its own callees and other nodes'.
func TestMeshRerouteLocalAndRemote(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	// "first" by REGISTER time: A's a1, then B's b1, then A's a2.
	a1 := es[0].join(proto.JSON)
	a1.register("com.f", map[string]any{"invoke": "first"})
	es[1].clock.add(time.Second)
	mm.sync()
	b1 := es[1].join(proto.JSON)
	b1.register("com.f", map[string]any{"invoke": "first"})
	es[0].clock.add(2 * time.Second)
	mm.sync()
	a2 := es[0].join(proto.JSON)
	a2.register("com.f", map[string]any{"invoke": "first"})
	mm.sync()
	caller := es[0].join(proto.MsgPack)
	req := caller.call("com.f", map[string]any{"timeout": 5000}, []any{"p"}, nil)
	inv := a1.expect(proto.CodeInvocation)
	a1.unavailable(inv.Request, nil, nil)
	mm.sync()
	inv = b1.expect(proto.CodeInvocation)
	if argsOf(inv)[0] != "p" {
		t.Fatalf("args at B %v", argsOf(inv))
	}
	b1.unavailable(inv.Request, nil, nil)
	mm.sync()
	inv = a2.expect(proto.CodeInvocation)
	a2.yield(inv.Request, nil, []any{"a2"})
	if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != "a2" {
		t.Fatalf("RESULT %s", describe(r))
	}
	// The caller leaves while B holds the rerouted call: B's callee is
	// interrupted, nothing is left on either node.
	req = caller.call("com.f", nil, nil, nil)
	inv = a1.expect(proto.CodeInvocation)
	a1.unavailable(inv.Request, nil, nil)
	mm.sync()
	inv = b1.expect(proto.CodeInvocation)
	caller.drop()
	mm.sync()
	if m := b1.expect(proto.CodeInterrupt); m.Request != inv.Request {
		t.Fatalf("INTERRUPT %s", describe(m))
	}
	_ = req
	assertNothingPending(t, mm)
	for _, e := range es {
		assertIdle(t, e)
	}
}

// Call envelopes carry the callees to leave out: a node whose callees all
// tried the call bounces it.
func TestMeshCallEnvelopeExclude(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	b1, b2 := es[1].join(proto.JSON), es[1].join(proto.JSON)
	b1.register("com.x", map[string]any{"invoke": "roundrobin"})
	b2.register("com.x", map[string]any{"invoke": "roundrobin"})
	mm.sync()
	rm := es[1].r.Realm("realm1")
	rm.mu.RLock()
	reg, _ := rm.regs.get(proto.MatchExact, "com.x")
	rm.mu.RUnlock()
	for i := 0; i < 4; i++ {
		ce, ok := pickLocalExcept(reg, []uint64{b1.id}, 0, nil)
		if !ok || ce.s.id != b2.id {
			t.Fatalf("pickLocalExcept left out b1: got %v %v", ce.s, ok)
		}
	}
	if _, ok := pickLocalExcept(reg, []uint64{b2.id, b1.id}, 0, nil); ok {
		t.Fatal("pickLocalExcept picked an excluded callee")
	}
	// Round trip of the exclusion list, bounded on decode.
	caller := es[0].join(proto.JSON)
	ce := callEnv{callID: 9, reg: reg, proc: []byte("com.x")}
	env := appendCall(nil, &ce, caller.sess, &carry{}, []uint64{b1.id, b2.id})
	var mc meshCall
	err := decodeCall(env, &mc)
	if err != nil || len(mc.exclude) != 2 || mc.exclude[0] != b1.id || mc.exclude[1] != b2.id {
		t.Fatalf("decoded %v %v", mc, err)
	}
	long := make([]uint64, maxCallTries)
	if err := decodeCall(appendCall(nil, &ce, caller.sess, &carry{}, long), &mc); err == nil {
		t.Fatal("an exclusion list of maxCallTries ids decoded")
	}
}

// WELCOME announces the dealer feature call_reroute.
func TestRerouteAnnounced(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.connect(proto.JSON)
	c.hello("realm1", allFeatures, nil)
	w := c.expect(proto.CodeWelcome)
	v, err := proto.DecodeValue(w.Dict)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := v.(map[string]any)
	roles, _ := d["roles"].(map[string]any)
	dealer, _ := roles["dealer"].(map[string]any)
	features, _ := dealer["features"].(map[string]any)
	if features[proto.FeatureCallReroute] != true {
		t.Fatalf("WELCOME dealer features %v lack %s", features, proto.FeatureCallReroute)
	}
}

// A node that sends a rerouted call back undelivered (its callee left,
// and the caller's node did not know yet) counts as a callee gone: the
// call goes on to an untried callee, here or on another node, never to
// one that already answered unavailable, and ends with
// no_available_callee only when none is left.
func TestMeshRerouteBounced(t *testing.T) {
	// Callees registered in this order (policy first), on the nodes named
	// ("A": the caller's node); b1 on B leaves unseen by A.
	setup := func(t *testing.T, order []int) (*memMesh, []*env, map[string]*tc, *tc) {
		mm, es := newMemMesh(t, 3, 1, nil)
		callees := map[string]*tc{}
		for _, n := range order {
			for _, e := range es {
				e.clock.add(time.Second) // REGISTER times in this order on every node
			}
			c := es[n].join(proto.JSON)
			c.register("com.b", map[string]any{"invoke": "first"})
			callees[[]string{"a1", "b1", "c1"}[n]] = c
			mm.sync()
		}
		mm.hold = true // B's callee leaves; A goes on believing it is there
		callees["b1"].goodbye()
		mm.sync()
		return mm, es, callees, es[0].join(proto.MsgPack)
	}
	done := func(t *testing.T, mm *memMesh, es []*env) {
		mm.release()
		assertNothingPending(t, mm)
		for _, e := range es {
			assertIdle(t, e)
		}
	}
	t.Run("tried callee not offered again", func(t *testing.T) {
		// c1, then b1: c1 refuses, B bounces; c1 has had it, nobody is left.
		mm, es, cs, caller := setup(t, []int{2, 1})
		req := caller.call("com.b", nil, []any{1}, nil)
		mm.sync()
		inv := cs["c1"].expect(proto.CodeInvocation)
		cs["c1"].unavailable(inv.Request, []any{"busy"}, nil)
		mm.sync()
		if len(cs["c1"].peer.in) != 0 {
			t.Fatalf("c1, which answered unavailable, got the call again: %s", describe(<-cs["c1"].peer.in))
		}
		if m := caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee); len(argsOf(m)) == 0 {
			t.Fatalf("no_available_callee without arguments")
		}
		cs["c1"].quiet()
		done(t, mm, es)
	})
	t.Run("untried callee takes it", func(t *testing.T) {
		// a1, b1, then c1: a1 refuses, B bounces; c1 has not had it.
		mm, es, cs, caller := setup(t, []int{0, 1, 2})
		req := caller.call("com.b", nil, []any{2}, nil)
		inv := cs["a1"].expect(proto.CodeInvocation)
		cs["a1"].unavailable(inv.Request, nil, nil)
		mm.sync()
		for _, c := range []*tc{caller, cs["a1"]} {
			if len(c.peer.in) != 0 {
				m := <-c.peer.in
				t.Fatalf("session %d got %v %s %s before c1 had the call", c.id, m.Type, m.URI, describe(m))
			}
		}
		inv = cs["c1"].expect(proto.CodeInvocation)
		if a := argsOf(inv); len(a) != 1 || a[0] != int64(2) {
			t.Fatalf("INVOCATION at C %s", describe(inv))
		}
		cs["c1"].yield(inv.Request, nil, []any{"c1"})
		if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != "c1" {
			t.Fatalf("RESULT %s", describe(r))
		}
		cs["a1"].quiet()
		done(t, mm, es)
	})
}

// A rerouted call of a first registration goes to the untried callee
// registered earliest in the whole mesh, by the callee node's clock: B's
// b1 (t0), A's a1 (t0+1 s), B's b2 (t0+2 s); b1 answers unavailable, so
// a1 is next, not b2. Before, the caller's node ranked B by its earliest
// callee's REGISTER time in the directory (b1's) even once b1 had had the
// call, and sent the call on to b2; B now says, with b1's answer, when
// its next untried callee registered (found by review).
func TestMeshRerouteFirstOrderAcrossNodes(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	b1 := es[1].join(proto.JSON)
	b1.register("com.f", map[string]any{"invoke": "first"})
	mm.sync()
	es[0].clock.add(time.Second)
	a1 := es[0].join(proto.JSON)
	a1.register("com.f", map[string]any{"invoke": "first"})
	mm.sync()
	es[1].clock.add(2 * time.Second)
	b2 := es[1].join(proto.JSON)
	b2.register("com.f", map[string]any{"invoke": "first"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.f", map[string]any{"timeout": 5000}, nil, nil)
	inv := b1.expect(proto.CodeInvocation)
	b1.unavailable(inv.Request, nil, nil)
	mm.sync()
	select {
	case m := <-b2.peer.in:
		t.Fatalf("rerouted to b2 (registered at t0+2s) before a1 (t0+1s): %s", describe(m))
	case m := <-a1.peer.in:
		a1.yield(m.Request, nil, []any{"a1"})
	case <-time.After(2 * time.Second):
		t.Fatal("no callee got the rerouted call")
	}
	if r := caller.expect(proto.CodeResult); r.Request != req {
		t.Fatalf("RESULT %s", describe(r))
	}
}

// The same for last: B's b2 (t0), A's a1 (t0+1 s), B's b1 (t0+2 s); b1,
// the latest, answers unavailable, so a1 is next, not b2. Before, B was
// ranked by its latest callee's time (b1's) and the call went on to b2.
func TestMeshRerouteLastOrderAcrossNodes(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	b2 := es[1].join(proto.JSON)
	b2.register("com.l", map[string]any{"invoke": "last"})
	mm.sync()
	es[0].clock.add(time.Second)
	a1 := es[0].join(proto.JSON)
	a1.register("com.l", map[string]any{"invoke": "last"})
	mm.sync()
	es[1].clock.add(2 * time.Second)
	b1 := es[1].join(proto.JSON)
	b1.register("com.l", map[string]any{"invoke": "last"})
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.l", map[string]any{"timeout": 5000}, nil, nil)
	inv := b1.expect(proto.CodeInvocation)
	b1.unavailable(inv.Request, nil, nil)
	mm.sync()
	select {
	case m := <-b2.peer.in:
		t.Fatalf("rerouted to b2 (registered at t0) before a1 (t0+1s): %s", describe(m))
	case m := <-a1.peer.in:
		a1.yield(m.Request, nil, []any{"a1"})
	case <-time.After(2 * time.Second):
		t.Fatal("no callee got the rerouted call")
	}
	if r := caller.expect(proto.CodeResult); r.Request != req {
		t.Fatalf("RESULT %s", describe(r))
	}
}

// What a callee's node says of its next untried callee, with its callee's
// wamp.error.unavailable, decides where a first call goes next: the next
// callee of that node when it registered before any other untried one,
// and never that node again when it has none left (no trip there to be
// sent back). A node of the previous release says nothing: the caller's
// node ranks it by the latest time its next callee may have registered,
// its last callee's (exact when one is left; otherwise another node's
// callee may come before it, as README says).
func TestMeshRerouteNodeNext(t *testing.T) {
	// Callees of com.n (policy first) registered at t0 + the seconds
	// given, on B ("b…") or A ("a…", the caller's node); the first
	// INVOCATION goes to b1 (at t0), which answers unavailable. B of the
	// previous release when prev is set.
	type reg struct {
		name string
		sec  int
	}
	run := func(t *testing.T, prev bool, order []reg, want string, setup func(*memMesh, map[string]*tc)) {
		mm, es := newMemMesh(t, 2, 1, nil)
		mm.nodes[1].prevRelease.Store(prev)
		t0 := es[0].clock.ns.Load()
		cs := map[string]*tc{}
		for _, r := range order {
			e := es[1]
			if r.name[0] == 'a' {
				e = es[0]
			}
			e.clock.ns.Store(t0 + int64(r.sec)*int64(time.Second))
			cs[r.name] = e.join(proto.JSON)
			cs[r.name].register("com.n", map[string]any{"invoke": "first"})
			mm.sync()
		}
		if setup != nil {
			setup(mm, cs)
		}
		caller := es[0].join(proto.JSON)
		req := caller.call("com.n", map[string]any{"timeout": 5000}, nil, nil)
		mm.sync()
		inv := cs["b1"].expect(proto.CodeInvocation)
		cs["b1"].unavailable(inv.Request, nil, nil)
		mm.sync()
		var got string
		for name, c := range cs {
			select {
			case m := <-c.peer.in:
				if got != "" {
					t.Fatalf("%s and %s both got the call", got, name)
				}
				got = name
				c.yield(m.Request, nil, []any{name})
			default:
			}
		}
		if got != want {
			t.Fatalf("rerouted to %q, want %q", got, want)
		}
		if r := caller.expect(proto.CodeResult); r.Request != req || argsOf(r)[0] != want {
			t.Fatalf("RESULT %s", describe(r))
		}
		if n := es[0].r.MeshStats().Bounced.Load(); n != 0 {
			t.Fatalf("%d calls sent back", n)
		}
		mm.release()
		assertNothingPending(t, mm)
		for _, e := range es {
			assertIdle(t, e)
		}
	}
	order := []reg{{"b1", 0}, {"b2", 1}, {"a1", 2}, {"b3", 3}}
	t.Run("next on the same node", func(t *testing.T) {
		run(t, false, order, "b2", nil)
	})
	t.Run("previous release", func(t *testing.T) {
		run(t, true, order, "a1", nil) // B ranked at b3's time
	})
	t.Run("previous release, one left", func(t *testing.T) {
		run(t, true, []reg{{"b1", 0}, {"a1", 1}, {"b2", 2}}, "a1", nil)
	})
	t.Run("none left", func(t *testing.T) {
		// b2 leaves, and A does not know yet: B's answer says it has no
		// callee left, so the call goes to a1 at once, not to B to be
		// sent back.
		run(t, false, []reg{{"b1", 0}, {"b2", 1}, {"a1", 2}}, "a1", func(mm *memMesh, cs map[string]*tc) {
			mm.hold = true
			cs["b2"].goodbye()
			mm.sync()
			delete(cs, "b2")
		})
	})
}

// A rerouted call whose INVOCATION waits in the next callee's event loop
// (blocked) when the call ends, or that callee leaves, in every way: once
// the loop runs again nothing is left behind, on any shard: no call,
// invocation, byte kept for rerouting or byte counted in a queue of calls.
func TestRerouteStagesAcrossShards(t *testing.T) {
	type world struct {
		e              *env
		a, b, c        *tc // callees, policy first, in this order; b on the blocked shard 2
		caller         *tc
		req            uint64
		invA           *proto.Message
		release, block func()
	}
	setup := func(t *testing.T, calleeC bool, opts map[string]any) *world {
		w := &world{e: newEnv(t, 3, nil)}
		e := w.e
		w.a = e.connectOn(1, proto.JSON)
		w.b = e.connectOn(2, proto.MsgPack)
		cs := []*tc{w.a, w.b}
		if calleeC {
			w.c = e.connectOn(1, proto.CBOR)
			cs = append(cs, w.c)
		}
		for _, c := range cs {
			c.hello("realm1", allFeatures, nil)
			c.id = c.expect(proto.CodeWelcome).ID
			c.register("com.stage", map[string]any{"invoke": "first"})
		}
		w.caller = e.connectOn(0, proto.CBOR)
		w.caller.hello("realm1", allFeatures, nil)
		w.caller.id = w.caller.expect(proto.CodeWelcome).ID
		w.req = w.caller.call("com.stage", opts, []any{"payload"}, map[string]any{"k": 1})
		w.invA = w.a.expect(proto.CodeInvocation)
		gate := make(chan struct{})
		w.block = func() {
			if err := e.execs[2].Execute(func() { <-gate }); err != nil {
				t.Fatal(err)
			}
		}
		w.release = func() { close(gate); e.sync() }
		return w
	}
	// syncUnblocked waits for shards 0 and 1.
	syncUnblocked := func(w *world) {
		for k := 0; k < 3; k++ {
			w.e.execs[0].do(func() {})
			w.e.execs[1].do(func() {})
		}
	}
	// reroute: A refuses; the call goes to B, whose loop is blocked.
	reroute := func(w *world) {
		w.block()
		w.a.unavailable(w.invA.Request, nil, nil)
		syncUnblocked(w)
		if n := w.e.r.Shard(2).callBacklog.Load(); n <= 0 {
			t.Fatalf("no rerouted call waits for shard 2 (backlog %d)", n)
		}
	}
	idle := func(t *testing.T, w *world) {
		t.Helper()
		assertIdle(t, w.e)
		for i := range w.e.execs {
			if n := w.e.r.Shard(i).callBacklog.Load(); n != 0 {
				t.Errorf("shard %d: %d bytes of calls counted as waiting", i, n)
			}
		}
		for _, c := range []*tc{w.a, w.b, w.c, w.caller} {
			if c != nil && !c.peer.closed.Load() {
				c.quiet()
			}
		}
	}
	cancel := func(w *world, mode string) {
		w.caller.send(&proto.Message{Type: proto.CodeCancel, Request: w.req, Dict: w.caller.opts(map[string]any{"mode": mode})})
	}

	for _, mode := range []string{"skip", "killnowait"} {
		t.Run("cancel "+mode, func(t *testing.T) {
			w := setup(t, false, nil)
			reroute(w)
			cancel(w, mode)
			w.caller.expectError(proto.CodeCall, w.req, proto.URICanceled)
			w.release()
			inv := w.b.expect(proto.CodeInvocation)
			if mode == "killnowait" {
				if m := w.b.expect(proto.CodeInterrupt); m.Request != inv.Request {
					t.Fatalf("INTERRUPT %s", describe(m))
				}
			}
			w.b.yield(inv.Request, nil, []any{"late"})
			idle(t, w)
		})
	}
	t.Run("cancel kill", func(t *testing.T) {
		w := setup(t, false, nil)
		reroute(w)
		cancel(w, "kill")
		syncUnblocked(w)
		w.release()
		inv := w.b.expect(proto.CodeInvocation)
		if m := w.b.expect(proto.CodeInterrupt); m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "kill" {
			t.Fatalf("INTERRUPT %s mode %s", describe(m), m.Opt.String(proto.KeyMode))
		}
		// B refuses the canceled call: not rerouted, its answer ends it.
		w.b.unavailable(inv.Request, nil, nil)
		w.caller.expectError(proto.CodeCall, w.req, proto.URIUnavailable)
		idle(t, w)
	})
	t.Run("timeout", func(t *testing.T) {
		w := setup(t, false, map[string]any{"timeout": 1000})
		reroute(w)
		w.e.clock.add(2 * time.Second)
		w.e.r.Tick(time.Second)
		syncUnblocked(w)
		w.caller.expectError(proto.CodeCall, w.req, proto.URITimeout)
		w.release()
		inv := w.b.expect(proto.CodeInvocation)
		w.b.expect(proto.CodeInterrupt)
		w.b.yield(inv.Request, nil, nil)
		idle(t, w)
	})
	t.Run("caller leaves", func(t *testing.T) {
		w := setup(t, false, nil)
		reroute(w)
		w.caller.drop()
		syncUnblocked(w)
		w.release()
		inv := w.b.expect(proto.CodeInvocation)
		w.b.expect(proto.CodeInterrupt)
		w.b.unavailable(inv.Request, nil, nil)
		idle(t, w)
	})
	t.Run("next callee leaves", func(t *testing.T) {
		// B leaves before its loop takes the call: it counts as
		// unavailable, and C, untried, takes it.
		w := setup(t, true, nil)
		w.block()
		if err := w.e.execs[2].Execute(func() { w.b.peer.closed.Store(true); w.b.sh.Detach(w.b.sess) }); err != nil {
			t.Fatal(err)
		}
		w.a.unavailable(w.invA.Request, nil, nil)
		syncUnblocked(w)
		w.release()
		inv := w.c.expect(proto.CodeInvocation)
		if a := argsOf(inv); len(a) != 1 || a[0] != "payload" || kwargsOf(inv)["k"] != uint64(1) && kwargsOf(inv)["k"] != int64(1) {
			t.Fatalf("INVOCATION at C %s %v", describe(inv), kwargsOf(inv))
		}
		w.c.yield(inv.Request, nil, []any{"c"})
		if r := w.caller.expect(proto.CodeResult); r.Request != w.req {
			t.Fatalf("RESULT %s", describe(r))
		}
		idle(t, w)
	})
	t.Run("router closes", func(t *testing.T) {
		w := setup(t, false, nil)
		reroute(w)
		w.release()
		inv := w.b.expect(proto.CodeInvocation)
		w.e.r.Close()
		w.e.sync()
		w.b.unavailable(inv.Request, nil, nil)
		w.e.sync()
		for i := range w.e.execs {
			sh := w.e.r.Shard(i)
			w.e.execs[i].do(func() {
				if sh.traffic.callsInFlight != 0 || sh.rerouteHeld != 0 {
					t.Errorf("shard %d after Close: %d calls, %d bytes kept", i, sh.traffic.callsInFlight, sh.rerouteHeld)
				}
			})
		}
	})
}

// A call canceled in kill mode before it reached a callee, which the
// callee's node then sends back undelivered (its callee left unseen by
// the caller's node): the INTERRUPT went to that node, so the call ends
// there with ERROR wamp.error.canceled; it is not resent to a callee that
// no INTERRUPT would ever reach, with the caller waiting on it.
func TestMeshKillCanceledCallBounced(t *testing.T) {
	for _, order := range [][]int{{1, 2}, {1}} { // rerouteable (two callees at CALL) or not
		t.Run(fmt.Sprintf("%d callees", len(order)), func(t *testing.T) {
			mm, es := newMemMesh(t, 3, 1, nil)
			callees := map[int]*tc{}
			for _, n := range order {
				for _, e := range es {
					e.clock.add(time.Second)
				}
				c := es[n].join(proto.JSON)
				c.register("com.k", map[string]any{"invoke": "first"})
				callees[n] = c
				mm.sync()
			}
			mm.hold = true // B's callee leaves; A goes on believing it is there
			callees[1].goodbye()
			mm.sync()
			caller := es[0].join(proto.MsgPack)
			block := make(chan struct{})
			mm.nodes[1].q <- func() { <-block } // B takes the call after the CANCEL
			req := caller.call("com.k", nil, []any{1}, nil)
			caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
			es[0].sync()
			close(block)
			mm.sync()
			caller.expectError(proto.CodeCall, req, proto.URICanceled)
			if c := callees[2]; c != nil {
				if len(c.peer.in) != 0 {
					t.Fatalf("C's callee got %s: the canceled call was sent on", describe(<-c.peer.in))
				}
				c.quiet()
			}
			mm.release()
			assertNothingPending(t, mm)
			for _, e := range es {
				assertIdle(t, e)
			}
		})
	}
}

// The random policy's pick after refusals: never a tried callee, every
// untried one in turn, whether most of the registration is untried
// (drawn until an untried one comes) or most is tried (counted).
func TestRandomUntried(t *testing.T) {
	for _, n := range []int{20, 40, 1000} {
		l := make([]callee, n)
		for i := range l {
			l[i] = callee{s: &Session{id: uint64(i + 1)}}
		}
		rr := &reroute{}
		for i := 0; i < 16; i++ {
			rr.tried = append(rr.tried, triedCallee{id: uint64(i*n/16 + 1)})
		}
		s := &Shard{rng: seedRand()}
		seen := map[uint64]int{}
		cl := needListOf(calleesOf(l), 0)
		for i := 0; i < 200*n; i++ {
			c := s.randomUntried(cl, rr)
			if rr.triedLocal(c.s.id) {
				t.Fatalf("%d callees: picked %d, which was tried", n, c.s.id)
			}
			seen[c.s.id]++
		}
		if len(seen) != n-16 {
			t.Fatalf("%d callees: %d of the %d untried picked", n, len(seen), n-16)
		}
		exp := 200 * n / (n - 16) // each untried callee's expected count
		for id, k := range seen {
			if k < exp/2 || k > exp*2 {
				t.Fatalf("%d callees: %d picked %d times, expected about %d", n, id, k, exp)
			}
		}
	}
}

// prevReleaseNextEnv is a result as this release sends it for a callee's
// wamp.error.unavailable of a first registration: shard 1, call 77,
// callee 12345, arguments [1] in CBOR, and rsNext saying the node's next
// untried callee registered at 2026-01-01T00:00:02Z (nextBits).
const prevReleaseNextEnv = "52014d9ea0e2be8ca1ba64b9601677616d702e6572726f722e756e617661696c61626c650000030381010000"

// A node of the previous release (the same mesh version, so it gets this
// release's envelopes) reads a result that names the node's next callee
// as before: its reader refuses trailing bytes but ignores flag bits it
// does not know, and rsNext and its value are such bits. This test uses
// only what that release has: run on it, it passes too.
func TestMeshResultNextReadByPreviousRelease(t *testing.T) {
	env, err := hex.DecodeString(prevReleaseNextEnv)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := decodeResult(env)
	if err != nil {
		t.Fatalf("decodeResult: %v", err)
	}
	known := mr.flags & (rsProgress | rsError | rsUnavailable)
	if mr.shard != 1 || mr.callID != 77 || known != rsError|rsUnavailable || mr.c.callee != 12345 ||
		mr.c.uri != proto.URIUnavailable || mr.c.msg != "" || !bytes.Equal(mr.c.args.B, []byte{0x81, 0x01}) || mr.c.kwargs.B != nil {
		t.Fatalf("decoded %+v, carry %+v", mr, *mr.c)
	}
}

// nextBits and calleeNext: what a node says of its next callee, to the
// microsecond, read back; a result without rsNext (the previous
// release's) says nothing.
func TestMeshResultNextBits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 2, 0, time.UTC).UnixNano()
	env := appendResult(nil, 1, 77, rsError|rsUnavailable|nextBits(t0, true), 12345, proto.URIUnavailable, "", &carry{args: proto.Raw{Ser: proto.CBOR, B: []byte{0x81, 0x01}}})
	if got := hex.EncodeToString(env); got != prevReleaseNextEnv {
		t.Fatalf("envelope %s, want %s", got, prevReleaseNextEnv)
	}
	mr, err := decodeResult(env)
	if err != nil {
		t.Fatal(err)
	}
	if at, none, said := calleeNext(mr.c.next); !said || none || at != t0 {
		t.Fatalf("next: at %d none %v said %v", at, none, said)
	}
	for _, at := range []int64{t0 + 1999, 0, 999, -1, -1000, -t0 - 1, math.MaxInt64, math.MinInt64} {
		f := rsError | rsUnavailable | nextBits(at, true)
		got, none, said := calleeNext(f >> rsNextShift)
		want := min(max(at/1000, -1<<57), 1<<57-1) * 1000
		if !said || none || got != want {
			t.Fatalf("%d: read %d none %v said %v, want %d", at, got, none, said, want)
		}
		if f&(rsProgress|rsError|rsUnavailable) != rsError|rsUnavailable {
			t.Fatalf("%d: flags %x", at, f)
		}
	}
	if _, none, said := calleeNext((rsError | rsUnavailable | nextBits(0, false)) >> rsNextShift); !said || !none {
		t.Fatalf("none left read as none %v said %v", none, said)
	}
	env = appendResult(nil, 1, 77, rsError|rsUnavailable, 12345, proto.URIUnavailable, "", nil)
	if mr, err = decodeResult(env); err != nil || mr.c.next != 0 {
		t.Fatalf("a result of the previous release: next %d, %v", mr.c.next, err)
	}
	if _, _, said := calleeNext(mr.c.next); said {
		t.Fatal("a result of the previous release said something of the next callee")
	}
}
