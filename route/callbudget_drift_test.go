package route

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// checkCallBudget asserts that Config.MaxCallsTotal's counters hold what
// the sessions hold: the router's total is every attached session's calls
// in flight, each owner record's count its sessions' calls, and its
// session count the sessions fixed to it; no record is left without a
// session. A call that leaves a session's table without its decrement (or
// with two) shows here at once, rather than as a router that refuses
// every call once it has drifted to its bound.
func checkCallBudget(t *testing.T, e *env, when string) {
	t.Helper()
	e.sync()
	type own struct{ n, mesh, sessions int64 }
	var total int64
	owners := map[*callOwner]*own{}
	for i, x := range e.execs {
		sh := e.r.Shard(i)
		x.do(func() {
			for ss := range sh.attached {
				total += int64(len(ss.calls))
				var mesh int64
				for _, oc := range ss.calls {
					if oc.callee == nil {
						mesh++
					}
				}
				if int64(ss.meshCalls) != mesh {
					t.Errorf("%s: session %d counts %d calls on other nodes' callees, holds %d", when, ss.id, ss.meshCalls, mesh)
				}
				if ss.callOwn == nil {
					continue
				}
				o := owners[ss.callOwn]
				if o == nil {
					o = &own{}
					owners[ss.callOwn] = o
				}
				o.n += int64(len(ss.calls))
				o.mesh += mesh
				o.sessions++
			}
		})
	}
	if got := e.r.calls.total.Load(); got != total {
		t.Errorf("%s: the router counts %d calls in flight, its sessions hold %d", when, got, total)
	}
	if got := e.r.Stats().CallsHeld; got != total {
		t.Errorf("%s: Stats.CallsHeld %d, the sessions hold %d", when, got, total)
	}
	if got := callsInFlight(e); got != total {
		t.Errorf("%s: Traffic.CallsInFlight %d, the sessions hold %d", when, got, total)
	}
	b := &e.r.calls
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, o := range b.by {
		w := owners[o]
		if w == nil {
			t.Errorf("%s: owner %q kept with no session (%d calls, %d sessions counted)", when, key, o.n.Load(), o.sessions)
			continue
		}
		if o.mesh.Load() != w.mesh {
			t.Errorf("%s: owner %q counts %d calls on other nodes' callees, its sessions hold %d", when, key, o.mesh.Load(), w.mesh)
		}
		if o.n.Load() != w.n || int64(o.sessions) != w.sessions {
			t.Errorf("%s: owner %q counts %d calls of %d sessions, its sessions hold %d calls, %d sessions", when, key, o.n.Load(), o.sessions, w.n, w.sessions)
		}
		delete(owners, o)
	}
	for o := range owners {
		t.Errorf("%s: sessions count in an owner record %q the router no longer has", when, o.key)
	}
}

// drainIn takes whatever c has been sent so far.
func drainIn(c *tc) []*proto.Message {
	c.e.sync()
	var ms []*proto.Message
	for {
		select {
		case m := <-c.peer.in:
			ms = append(ms, m)
		default:
			return ms
		}
	}
}

// invOf waits for an INVOCATION at c and returns its request id.
func invOf(c *tc) uint64 { c.t.Helper(); return c.expect(proto.CodeInvocation).Request }

func (c *tc) cancelMode(req uint64, mode string) {
	c.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: c.opts(map[string]any{"mode": mode})})
}

func (c *tc) invError(inv uint64, uri string) {
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv, Dict: c.opts(nil), URI: []byte(uri)})
}

// Every way a call ends gives its place in Config.MaxCallsTotal back, once,
// to the router and to its owner: answered, refused, canceled in each
// mode, interrupted, timed out, its callee or caller gone (or both, or
// killed), progressive either way, rerouted, its grant or realm taken by a
// reload; callers on both shards, callees on both, one address's sessions
// sharing an owner across shards and an authid's likewise. The counters
// are checked against the sessions' tables after each.
func TestCallBudgetNoDriftLocal(t *testing.T) {
	z, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.MaxCallsTotal = 64
		c.MaxPendingCalls = 64
		c.Realms = append(c.Realms, RealmConfig{Name: "secure", Anonymous: true, AnonymousRole: "app", Authorizer: z})
	})
	noCancel := map[string]any{"callee": map[string]any{"features": map[string]any{"progressive_call_results": true, "shared_registration": true}},
		"caller": map[string]any{"features": map[string]any{"progressive_call_results": true}}}
	joinFrom := func(shard int, remote, realm string, roles map[string]any) *tc {
		c := e.connectFrom(shard, proto.JSON, remote)
		c.hello(realm, roles, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	// Callees on both shards; a shared registration on both; one without
	// call canceling.
	ce := []*tc{joinFrom(0, "192.0.2.1:1", "realm1", allFeatures), joinFrom(1, "192.0.2.2:1", "realm1", allFeatures)}
	for i, c := range ce {
		c.register(fmt.Sprintf("com.p%d", i), nil)
		c.register("com.shared", map[string]any{"invoke": "roundrobin"})
	}
	nc := joinFrom(1, "192.0.2.3:1", "realm1", noCancel)
	nc.register("com.nc", nil)
	// Callers: one address on both shards, and an authid on both.
	callers := []*tc{joinFrom(0, "198.51.100.7:1", "realm1", allFeatures), joinFrom(1, "198.51.100.7:2", "realm1", allFeatures)}
	for i := 0; i < 2; i++ {
		c := e.connectFrom(i, proto.JSON, fmt.Sprintf("203.0.113.%d:1", i))
		c.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": "alice"})
		c.id = c.expect(proto.CodeWelcome).ID
		callers = append(callers, c)
	}
	// The trusted realm's callee.
	tcal := e.connectFrom(1, proto.JSON, "192.0.2.9:2")
	tcal.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": "svc"})
	tcal.id = tcal.expect(proto.CodeWelcome).ID
	for i := range ce {
		tcal.register(fmt.Sprintf("com.p%d", i), nil)
	}
	calleeOf := func(caller *tc, i int) *tc {
		if caller.sess.realm.name == "trusted" {
			return tcal
		}
		return ce[i]
	}
	checkCallBudget(t, e, "joined")

	for ci, caller := range callers {
		for i := range ce {
			callee := calleeOf(caller, i)
			proc := fmt.Sprintf("com.p%d", i)
			step := func(what string) { checkCallBudget(t, e, fmt.Sprintf("caller %d, callee %d: %s", ci, i, what)) }

			caller.call(proc, nil, nil, nil)
			callee.yield(invOf(callee), nil, []any{1})
			caller.expect(proto.CodeResult)
			step("YIELD")

			caller.call(proc, nil, nil, nil)
			callee.invError(invOf(callee), "com.app.failed")
			caller.expect(proto.CodeError)
			step("ERROR")

			for _, mode := range []string{"skip", "kill", "killnowait"} {
				req := caller.call(proc, nil, nil, nil)
				inv := invOf(callee)
				caller.cancelMode(req, mode)
				if mode == "kill" {
					callee.expect(proto.CodeInterrupt)
					step("CANCEL kill, before the callee's answer")
					callee.invError(inv, proto.URICanceled)
				}
				caller.expectError(proto.CodeCall, req, proto.URICanceled)
				callee.yield(inv, nil, nil) // late
				drainIn(callee)
				drainIn(caller)
				step("CANCEL " + mode)
			}

			// Kill mode twice, and the callee answering its own way.
			req := caller.call(proc, nil, nil, nil)
			inv := invOf(callee)
			caller.cancelMode(req, "kill")
			caller.cancelMode(req, "kill")
			callee.yield(inv, nil, []any{"anyway"})
			drainIn(callee)
			drainIn(caller)
			step("CANCEL kill twice, YIELD")

			// Timeout.
			req = caller.call(proc, map[string]any{"timeout": 1000}, nil, nil)
			inv = invOf(callee)
			e.advance(2 * time.Second)
			caller.expectError(proto.CodeCall, req, proto.URITimeout)
			callee.expect(proto.CodeInterrupt)
			callee.yield(inv, nil, nil)
			drainIn(caller)
			step("timeout")

			// A timeout and a YIELD at once; a CANCEL after the answer.
			req = caller.call(proc, map[string]any{"timeout": 1000}, nil, nil)
			inv = invOf(callee)
			callee.yield(inv, nil, nil)
			e.advance(2 * time.Second)
			caller.cancelMode(req, "killnowait")
			drainIn(caller)
			drainIn(callee)
			step("timeout after YIELD, CANCEL after the answer")

			// Progressive results.
			caller.call(proc, map[string]any{"receive_progress": true}, nil, nil)
			inv = invOf(callee)
			callee.yield(inv, map[string]any{"progress": true}, []any{1})
			callee.yield(inv, map[string]any{"progress": true}, []any{2})
			step("progressive results")
			callee.yield(inv, nil, []any{3})
			drainIn(caller)
			step("progressive results, final")

			// Progressive call invocations: answered; canceled mid-stream
			// (its late chunks dropped); a callee's ERROR mid-stream.
			for _, end := range []string{"yield", "cancel", "error"} {
				req = caller.nextReq()
				caller.callChunk(req, proc, true, 1)
				inv = invOf(callee)
				caller.callChunk(req, proc, true, 2)
				step("progressive invocation " + end + ", chunks")
				switch end {
				case "yield":
					caller.callChunk(req, proc, false, 3)
					callee.yield(inv, nil, nil)
				case "cancel":
					caller.cancelMode(req, "killnowait")
					caller.callChunk(req, proc, true, 3)
					caller.callChunk(req, proc, false, 4)
				case "error":
					callee.invError(inv, "com.app.failed")
					e.sync()
					caller.callChunk(req, proc, false, 3)
				}
				drainIn(callee)
				drainIn(caller)
				step("progressive invocation " + end)
			}
		}
		// A callee without call canceling: CANCEL kill is skip.
		if caller.sess.realm.name == "realm1" {
			req := caller.call("com.nc", nil, nil, nil)
			inv := invOf(nc)
			caller.cancelMode(req, "kill")
			caller.expectError(proto.CodeCall, req, proto.URICanceled)
			nc.yield(inv, nil, nil)
			drainIn(caller)
			checkCallBudget(t, e, "CANCEL to a callee without canceling")

			// Rerouted: the first callee is unavailable, the other
			// answers; both unavailable.
			caller.call("com.shared", nil, nil, nil)
			e.sync()
			k, m := invoked(t, ce)
			ce[k].unavailable(m.Request, nil, nil)
			e.sync()
			k2, m2 := invoked(t, ce)
			if k2 == k {
				t.Fatalf("rerouted to the same callee")
			}
			checkCallBudget(t, e, "rerouted")
			ce[k2].yield(m2.Request, nil, nil)
			caller.expect(proto.CodeResult)
			checkCallBudget(t, e, "rerouted, answered")
			caller.call("com.shared", nil, nil, nil)
			e.sync()
			k, m = invoked(t, ce)
			ce[k].unavailable(m.Request, nil, nil)
			e.sync()
			k, m = invoked(t, ce)
			ce[k].unavailable(m.Request, nil, nil)
			e.sync()
			caller.expectError(proto.CodeCall, caller.req, proto.URINoAvailableCallee)
			checkCallBudget(t, e, "rerouted, exhausted")
		}

		// Refused before or after the count: no procedure, a reserved
		// one, a meta procedure, a callee not taking the invocation's
		// length, a callee busy.
		req := caller.call("com.none", nil, nil, nil)
		caller.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
		req = caller.call("wamp.none", nil, nil, nil)
		caller.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
		caller.callMeta("wamp.session.count", nil, nil)
		callee := calleeOf(caller, 1)
		callee.peer.maxLen.Store(200)
		req = caller.call("com.p1", nil, []any{strings.Repeat("x", 400)}, nil)
		caller.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
		callee.peer.maxLen.Store(0)
		callee.peer.backlog.Store(1)
		callee.peer.in <- &proto.Message{} // one unread
		req = caller.call("com.p1", nil, nil, nil)
		caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
		callee.peer.backlog.Store(0)
		drainIn(callee)
		checkCallBudget(t, e, fmt.Sprintf("caller %d: refused calls", ci))
	}

	// Calls held, then their callee leaves, its caller leaves, both at
	// once, the caller killed by the meta API.
	hold := func(c *tc, callee *tc, proc string, n int) {
		for j := 0; j < n; j++ {
			c.call(proc, nil, nil, nil)
			invOf(callee)
		}
	}
	hold(callers[0], ce[1], "com.p1", 3)
	hold(callers[1], ce[1], "com.p1", 3)
	hold(callers[2], tcal, "com.p0", 2)
	checkCallBudget(t, e, "held")
	ce[1].goodbye()
	drainIn(callers[0])
	drainIn(callers[1])
	checkCallBudget(t, e, "their callee left")

	hold(callers[0], ce[0], "com.p0", 3)
	callers[0].goodbye()
	drainIn(ce[0])
	checkCallBudget(t, e, "the caller left")

	hold(callers[1], ce[0], "com.p0", 3)
	callers[1].drop()
	ce[0].drop()
	checkCallBudget(t, e, "caller and callee dropped")

	hold(callers[3], tcal, "com.p1", 2)
	killer := e.connectFrom(0, proto.JSON, "192.0.2.201:1")
	killer.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": "admin"})
	killer.id = killer.expect(proto.CodeWelcome).ID
	killer.callMeta("wamp.session.kill", []any{callers[3].id}, nil)
	drainIn(tcal)
	checkCallBudget(t, e, "caller killed by wamp.session.kill")
	hold(callers[2], tcal, "com.p1", 1)
	killer.callMeta("wamp.session.kill_by_authid", []any{"alice"}, nil)
	drainIn(tcal)
	checkCallBudget(t, e, "callers killed by wamp.session.kill_by_authid")

	// A reload takes the grant, then the realm.
	sc := joinFrom(0, "198.51.100.8:1", "secure", allFeatures)
	scc := joinFrom(1, "192.0.2.10:1", "secure", allFeatures)
	scc.register("app.x", nil)
	scc.register("other.x", nil)
	hold(sc, scc, "app.x", 2)
	hold(sc, scc, "other.x", 2)
	z2, err := NewRBAC([]Role{{Name: "app", Permissions: []Permission{{URI: "other.", Match: proto.MatchPrefix, Call: true, Register: true}, {URI: "app.", Match: proto.MatchPrefix, Register: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := *e.r.Realm("secure").conf()
	rc.Authorizer = z2
	keep := []RealmConfig{*e.r.Realm("realm1").conf(), *e.r.Realm("trusted").conf()}
	if err := e.r.Reload(append(keep, rc)); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.sync()
	if ms := drainIn(sc); len(ms) != 2 || string(ms[0].URI) != proto.URINotAuthorized || string(ms[1].URI) != proto.URINotAuthorized {
		t.Fatalf("a reload took the grant of 2 calls: the caller got %d messages", len(ms))
	}
	checkCallBudget(t, e, "a reload took the grant")
	if err := e.r.Reload(keep); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if m := sc.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseKilled {
		t.Fatalf("a reload took the realm: GOODBYE %s", m.URI)
	}
	checkCallBudget(t, e, "a reload took the realm")

	for _, c := range []*tc{nc, tcal, killer, sc, scc} {
		c.drop()
	}
	for _, c := range callers {
		c.drop()
	}
	checkCallBudget(t, e, "all gone")
	if n := e.r.Stats().CallsHeld; n != 0 {
		t.Fatalf("%d calls counted with no session", n)
	}
	e.r.calls.mu.Lock()
	n := len(e.r.calls.by)
	e.r.calls.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d owner records with no session", n)
	}
}

// As TestCallBudgetNoDriftLocal, for calls to other nodes' callees, which
// count on the caller's node: answered, refused, canceled, timed out,
// progressive, rerouted to another node, bounced back by a node whose
// callee left, refused by the mesh mid-stream, their callee's node gone,
// the caller's node draining (both phases), the caller leaving.
func TestCallBudgetNoDriftMesh(t *testing.T) {
	mm, es := newMemMesh(t, 3, 2, func(c *Config) { c.MaxCallsTotal = 64; c.MaxMeshCalls = 64 })
	a := es[0]
	check := func(what string) {
		t.Helper()
		mm.sync()
		for i, e := range es {
			if !mm.nodes[i].dead.Load() {
				checkCallBudget(t, e, fmt.Sprintf("node %d: %s", i, what))
			}
		}
	}
	calleeB := es[1].join(proto.JSON)
	calleeB.register("com.b", nil)
	calleeB.register("com.shared", map[string]any{"invoke": "roundrobin"})
	calleeB.register("com.gone", nil)
	calleeC := es[2].join(proto.JSON)
	calleeC.register("com.c", nil)
	calleeC.register("com.shared", map[string]any{"invoke": "roundrobin"})
	mm.sync()
	var callers []*tc
	for i := 0; i < 2; i++ {
		c := a.connectFrom(i, proto.JSON, fmt.Sprintf("198.51.100.7:%d", i))
		c.hello("realm1", allFeatures, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		callers = append(callers, c)
	}
	for ci, caller := range callers {
		for _, callee := range []*tc{calleeB, calleeC} {
			proc := "com.b"
			if callee == calleeC {
				proc = "com.c"
			}
			step := func(what string) { t.Helper(); check(fmt.Sprintf("caller %d, %s: %s", ci, proc, what)) }
			caller.call(proc, nil, nil, nil)
			callee.yield(invOf(callee), nil, nil)
			caller.expect(proto.CodeResult)
			step("YIELD")
			caller.call(proc, nil, nil, nil)
			callee.invError(invOf(callee), "com.app.failed")
			caller.expect(proto.CodeError)
			step("ERROR")
			for _, mode := range []string{"skip", "kill", "killnowait"} {
				req := caller.call(proc, nil, nil, nil)
				inv := invOf(callee)
				caller.cancelMode(req, mode)
				if mode == "kill" {
					callee.expect(proto.CodeInterrupt)
					step("CANCEL kill, before the answer")
					callee.invError(inv, proto.URICanceled)
				}
				caller.expectError(proto.CodeCall, req, proto.URICanceled)
				callee.yield(inv, nil, nil)
				mm.sync()
				drainIn(callee)
				drainIn(caller)
				step("CANCEL " + mode)
			}
			req := caller.call(proc, map[string]any{"timeout": 1000}, nil, nil)
			inv := invOf(callee)
			for _, e := range es {
				e.advance(2 * time.Second)
			}
			mm.sync()
			caller.expectError(proto.CodeCall, req, proto.URITimeout)
			drainIn(callee)
			callee.yield(inv, nil, nil)
			mm.sync()
			drainIn(caller)
			step("timeout")

			caller.call(proc, map[string]any{"receive_progress": true}, nil, nil)
			inv = invOf(callee)
			callee.yield(inv, map[string]any{"progress": true}, []any{1})
			mm.sync()
			step("progressive results")
			callee.yield(inv, nil, []any{2})
			mm.sync()
			drainIn(caller)
			step("progressive results, final")

			for _, end := range []string{"yield", "cancel", "sendfail"} {
				req = caller.nextReq()
				caller.callChunk(req, proc, true, 1)
				inv = invOf(callee)
				caller.callChunk(req, proc, true, 2)
				step("progressive invocation " + end + ", chunks")
				switch end {
				case "yield":
					caller.callChunk(req, proc, false, 3)
					mm.sync()
					callee.yield(inv, nil, nil)
				case "cancel":
					caller.cancelMode(req, "killnowait")
					caller.callChunk(req, proc, false, 3)
				case "sendfail":
					errFull := fmt.Errorf("outbound queue full")
					mm.nodes[0].sendErr.Store(&errFull)
					caller.callChunk(req, proc, false, 3)
					mm.nodes[0].sendErr.Store(nil)
					// The INTERRUPT the full queue refused is kept and
					// sent again (9786d38) at the next retry turn (250 ms
					// of the routers' clock): the callee gets it then,
					// not at some later step's advance of the clock.
					mm.sync()
					for _, e := range es {
						e.advance(300 * time.Millisecond)
					}
					mm.sync()
					for {
						m := callee.recv() // the chunks sent before, then the INTERRUPT
						if m.Type == proto.CodeInterrupt {
							if m.Request != inv {
								t.Fatalf("INTERRUPT for %d, want %d", m.Request, inv)
							}
							break
						}
						if m.Type != proto.CodeInvocation {
							t.Fatalf("callee got %v %s, want the chunks, then INTERRUPT", m.Type, describe(m))
						}
					}
				}
				mm.sync()
				drainIn(callee)
				drainIn(caller)
				step("progressive invocation " + end)
			}
			// Refused by the mesh before it left.
			errFull := fmt.Errorf("outbound queue full")
			mm.nodes[0].sendErr.Store(&errFull)
			caller.call(proc, nil, nil, nil)
			mm.sync()
			mm.nodes[0].sendErr.Store(nil)
			drainIn(caller)
			step("refused by the mesh")
		}
		// Rerouted to the other node's callee.
		caller.call("com.shared", nil, nil, nil)
		mm.sync()
		k, m := invoked(t, []*tc{calleeB, calleeC})
		[]*tc{calleeB, calleeC}[k].unavailable(m.Request, nil, nil)
		mm.sync()
		k2, m2 := invoked(t, []*tc{calleeB, calleeC})
		if k2 == k {
			t.Fatal("rerouted to the same callee")
		}
		check("rerouted across nodes")
		[]*tc{calleeB, calleeC}[k2].yield(m2.Request, nil, nil)
		caller.expect(proto.CodeResult)
		check("rerouted across nodes, answered")
	}

	// Bounced: the caller's node has not heard that the callee left.
	mm.mu.Lock()
	mm.hold = true
	mm.mu.Unlock()
	calleeB.send(&proto.Message{Type: proto.CodeUnregister, Request: calleeB.nextReq(), ID: regIDOf(t, es[1], "com.gone")})
	calleeB.expect(proto.CodeUnregistered)
	req := callers[0].call("com.gone", nil, nil, nil)
	mm.sync()
	callers[0].expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	mm.release()
	check("bounced")

	// The callee's node dies with calls held; the caller leaves with
	// calls held.
	for i := 0; i < 3; i++ {
		callers[0].call("com.c", nil, nil, nil)
		callers[1].call("com.c", nil, nil, nil)
		callers[1].call("com.b", nil, nil, nil)
	}
	mm.sync()
	check("held")
	mm.kill(2)
	drainIn(callers[0])
	drainIn(callers[1])
	check("the callee's node died")
	callers[1].goodbye()
	check("the caller left")
	drainIn(calleeB)

	// The caller's node drains: a call in progress at the start, then one
	// made during the drain (its second phase), both answered.
	callers[0].call("com.b", nil, nil, nil)
	inv1 := invOf(calleeB)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.r.Drain(ctx) }()
	for !a.r.Draining() {
		time.Sleep(time.Millisecond)
	}
	a.sync()
	callers[0].call("com.b", nil, nil, nil)
	inv2 := invOf(calleeB)
	check("draining")
	calleeB.yield(inv1, nil, nil)
	calleeB.yield(inv2, nil, nil)
	callers[0].expect(proto.CodeResult)
	callers[0].expect(proto.CodeResult)
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	req = callers[0].call("com.b", nil, nil, nil)
	callers[0].expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	check("drained")
	callers[0].drop()
	check("all callers gone")
	if n := a.r.Stats().CallsHeld; n != 0 {
		t.Fatalf("%d calls counted with no caller", n)
	}
}

// regIDOf returns the id of the registration of uri in realm1 on e.
func regIDOf(t *testing.T, e *env, uri string) uint64 {
	t.Helper()
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	for id, reg := range rm.regByID {
		if reg.uri == uri {
			return id
		}
	}
	t.Fatalf("no registration of %s", uri)
	return 0
}
