package route

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Every serializer pair, on different shards: caller, callee.
func TestCallRoundTripAllSerializers(t *testing.T) {
	for _, cs := range sers {
		for _, ce := range sers {
			t.Run(cs.String()+"->"+ce.String(), func(t *testing.T) {
				e := newEnv(t, 2, nil)
				callee := e.join(ce)
				caller := e.join(cs)
				if callee.sh == caller.sh {
					t.Fatal("harness should put them on different shards")
				}
				regID := callee.register("com.math.add", nil)
				req := caller.call("com.math.add", nil, []any{int64(2), "x", []byte{0, 1, 0xff}}, map[string]any{"k": 1.5})
				inv := callee.expect(proto.CodeInvocation)
				if inv.ID != regID {
					t.Fatalf("INVOCATION registration %d, want %d", inv.ID, regID)
				}
				if got := argsOf(inv); !reflect.DeepEqual(got, []any{int64(2), "x", []byte{0, 1, 0xff}}) {
					t.Fatalf("args %#v", got)
				}
				if got := kwargsOf(inv); !reflect.DeepEqual(got, map[string]any{"k": 1.5}) {
					t.Fatalf("kwargs %#v", got)
				}
				if inv.Opt.Has(proto.KeyCaller) {
					t.Fatal("caller disclosed without asking")
				}
				callee.yield(inv.Request, nil, []any{"ok", int64(1) << 53})
				res := caller.expect(proto.CodeResult)
				if res.Request != req || !reflect.DeepEqual(argsOf(res), []any{"ok", int64(1) << 53}) {
					t.Fatalf("RESULT %s", describe(res))
				}
			})
		}
	}
}

func TestCallErrorForwarded(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.MsgPack), e.join(proto.JSON)
	callee.register("com.fail", nil)
	req := caller.call("com.fail", nil, []any{1}, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil),
		URI: []byte("com.app.error.bad"), Args: raw(t, proto.MsgPack, []any{"why"}), Kwargs: raw(t, proto.MsgPack, map[string]any{"code": 7})})
	m := caller.expectError(proto.CodeCall, req, "com.app.error.bad")
	if !reflect.DeepEqual(argsOf(m), []any{"why"}) || !reflect.DeepEqual(kwargsOf(m), map[string]any{"code": int64(7)}) {
		t.Fatalf("error payload %v %v", argsOf(m), kwargsOf(m))
	}
}

func TestNoSuchProcedureAndInvalidURI(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	req := c.call("com.none", nil, nil, nil)
	c.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	req = c.call("com..bad", nil, nil, nil)
	c.expectError(proto.CodeCall, req, proto.URIInvalidURI)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(nil), URI: []byte("wamp.session.count")})
	c.expectError(proto.CodeRegister, req, proto.URIInvalidURI)
}

func TestRegisterConflicts(t *testing.T) {
	e := newEnv(t, 2, nil)
	a, b := e.join(proto.JSON), e.join(proto.JSON)
	a.register("com.single", nil)
	req := b.nextReq()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: b.opts(nil), URI: []byte("com.single")})
	b.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)

	// Any policy against a single registration: procedure_already_exists.
	req = b.nextReq()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: b.opts(map[string]any{"invoke": "roundrobin"}), URI: []byte("com.single")})
	b.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)

	// Another policy against a shared registration (single included):
	// procedure_exists_with_different_invocation_policy, as Crossbar.io,
	// Bondy and nexus answer (before, procedure_already_exists).
	a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	req = b.nextReq()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: b.opts(map[string]any{"invoke": "random"}), URI: []byte("com.shared")})
	m := b.expectError(proto.CodeRegister, req, proto.URIProcedureExistsInvocationPolicyConflict)
	if got := argsOf(m); len(got) != 1 || got[0] != `procedure "com.shared" is registered with invocation policy roundrobin, not random` {
		t.Fatalf("message %v", got)
	}
	req = b.nextReq()
	b.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: b.opts(nil), URI: []byte("com.shared")})
	b.expectError(proto.CodeRegister, req, proto.URIProcedureExistsInvocationPolicyConflict)
	// Same session twice.
	req = a.nextReq()
	a.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: a.opts(map[string]any{"invoke": "roundrobin"}), URI: []byte("com.shared")})
	a.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)
	// The same URI with another match policy is a different registration.
	b.register("com.single", map[string]any{"match": "prefix"})
}

func TestSharedRegistrationPolicies(t *testing.T) {
	for _, policy := range []string{"roundrobin", "random", "first", "last"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			callees := []*tc{e.join(proto.JSON), e.join(proto.MsgPack), e.join(proto.CBOR)}
			for _, c := range callees {
				c.register("com.svc", map[string]any{"invoke": policy})
			}
			caller := e.join(proto.JSON)
			count := make([]int, len(callees))
			var order []int
			for i := 0; i < 30; i++ {
				caller.call("com.svc", nil, nil, nil)
				e.sync()
				got := -1
				for j, c := range callees {
					select {
					case m := <-c.peer.in:
						if m.Type != proto.CodeInvocation {
							t.Fatalf("got %v", m.Type)
						}
						c.yield(m.Request, nil, nil)
						got = j
					default:
					}
				}
				if got < 0 {
					t.Fatal("no callee invoked")
				}
				count[got]++
				order = append(order, got)
				caller.expect(proto.CodeResult)
			}
			switch policy {
			case "roundrobin":
				for i := range order {
					if order[i] != order[i%3] {
						t.Fatalf("not round robin: %v", order)
					}
				}
				if count[0] != 10 || count[1] != 10 || count[2] != 10 {
					t.Fatalf("counts %v", count)
				}
			case "first":
				if count[0] != 30 {
					t.Fatalf("counts %v", count)
				}
			case "last":
				if count[2] != 30 {
					t.Fatalf("counts %v", count)
				}
			case "random":
				if count[0] == 30 || count[1] == 30 || count[2] == 30 {
					t.Fatalf("random picked one callee 30 times: %v", count)
				}
			}
			// first/last follow registration order when the first leaves.
			if policy == "first" {
				callees[0].goodbye()
				caller.call("com.svc", nil, nil, nil)
				callees[1].expect(proto.CodeInvocation)
			}
		})
	}
}

func TestPatternRegistrations(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.MsgPack)
	ids := map[string]uint64{}
	ids["exact"] = callee.register("a1.b2.c3.d4.e55", nil)
	ids["p2"] = callee.register("a1.b2.c3", map[string]any{"match": "prefix"})
	ids["p3"] = callee.register("a1.b2.c3.d4", map[string]any{"match": "prefix"})
	ids["w4"] = callee.register("a1.b2..d4.e5", map[string]any{"match": "wildcard"})
	ids["w5"] = callee.register("a1.b2.c3..e5", map[string]any{"match": "wildcard"})
	ids["w6"] = callee.register("a1.b2..d4.e5..g7", map[string]any{"match": "wildcard"})
	ids["w7"] = callee.register("a1.b2..d4..f6.g7", map[string]any{"match": "wildcard"})
	// The specification's examples (§Pattern-based Registration).
	cases := []struct{ uri, want string }{
		{"a1.b2.c3.d4.e55", "exact"},
		{"a1.b2.c3.d98.e74", "p2"},
		{"a1.b2.c3.d4.e325", "p3"},
		{"a1.b2.c55.d4.e5", "w4"},
		{"a1.b2.c3.d4.e5", "p3"},
		{"a1.b2.c88.d4.e5.f6.g7", "w6"},
	}
	for _, k := range cases {
		caller.call(k.uri, nil, nil, nil)
		inv := callee.expect(proto.CodeInvocation)
		if inv.ID != ids[k.want] {
			t.Fatalf("%s routed to %d, want %s (%d)", k.uri, inv.ID, k.want, ids[k.want])
		}
		if k.want != "exact" && inv.Opt.String(proto.KeyProcedure) != k.uri {
			t.Fatalf("details.procedure %q", inv.Opt.String(proto.KeyProcedure))
		}
		if k.want == "exact" && inv.Opt.Has(proto.KeyProcedure) {
			t.Fatal("details.procedure on an exact registration")
		}
		callee.yield(inv.Request, nil, nil)
		caller.expect(proto.CodeResult)
	}
	req := caller.call("a2.b2.c2.d2.e2", nil, nil, nil)
	caller.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
}

func TestCallerIdentification(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.CBOR)
	callee.register("com.who", map[string]any{"disclose_caller": true})
	callee.register("com.anon", nil)
	caller.call("com.who", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if inv.Opt.Uint(proto.KeyCaller) != caller.id || inv.Opt.String(proto.KeyCallerAuthRole) != "anonymous" || inv.Opt.String(proto.KeyCallerAuthID) == "" {
		t.Fatalf("caller details: %d %q %q", inv.Opt.Uint(proto.KeyCaller), inv.Opt.String(proto.KeyCallerAuthID), inv.Opt.String(proto.KeyCallerAuthRole))
	}
	caller.call("com.anon", map[string]any{"disclose_me": true}, nil, nil)
	inv = callee.expect(proto.CodeInvocation)
	if inv.Opt.Uint(proto.KeyCaller) != caller.id {
		t.Fatal("disclose_me ignored")
	}
}

func TestProgressiveResults(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.MsgPack), e.join(proto.JSON)
	callee.register("com.stream", nil)
	req := caller.call("com.stream", map[string]any{"receive_progress": true}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if !inv.Opt.Bool(proto.KeyReceiveProgress, false) {
		t.Fatal("INVOCATION.Details.receive_progress not set")
	}
	for i := 0; i < 5; i++ {
		callee.yield(inv.Request, map[string]any{"progress": true}, []any{i})
	}
	callee.yield(inv.Request, nil, []any{"done"})
	for i := 0; i < 5; i++ {
		m := caller.expect(proto.CodeResult)
		if m.Request != req || !m.Opt.Bool(proto.KeyProgress, false) || !reflect.DeepEqual(argsOf(m), []any{int64(i)}) {
			t.Fatalf("progress %d: %s progress=%v", i, describe(m), m.Opt.Bool(proto.KeyProgress, false))
		}
	}
	m := caller.expect(proto.CodeResult)
	if m.Opt.Has(proto.KeyProgress) || !reflect.DeepEqual(argsOf(m), []any{"done"}) {
		t.Fatalf("final %s", describe(m))
	}
	// After the final result the invocation is gone: a late yield is ignored.
	callee.yield(inv.Request, nil, []any{"late"})
	caller.quiet()
}

func TestProgressiveResultsThenError(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.stream", nil)
	req := caller.call("com.stream", map[string]any{"receive_progress": true}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, map[string]any{"progress": true}, []any{1})
	callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil), URI: []byte("com.err")})
	caller.expect(proto.CodeResult)
	caller.expectError(proto.CodeCall, req, "com.err")
	caller.quiet()
}

func TestProgressWithoutReceiveProgressIgnored(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.p", nil)
	req := caller.call("com.p", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if inv.Opt.Has(proto.KeyReceiveProgress) {
		t.Fatal("receive_progress set though the caller did not ask")
	}
	callee.yield(inv.Request, map[string]any{"progress": true}, []any{1})
	caller.quiet()
	callee.yield(inv.Request, nil, []any{2})
	if m := caller.expect(proto.CodeResult); m.Request != req || !reflect.DeepEqual(argsOf(m), []any{int64(2)}) {
		t.Fatalf("%s", describe(m))
	}
}

func TestProgressiveCallInvocations(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.CBOR), e.join(proto.JSON)
	callee.register("com.upload", map[string]any{"invoke": "roundrobin"})
	other := e.join(proto.JSON)
	other.register("com.upload", map[string]any{"invoke": "roundrobin"})
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 1)
	caller.callChunk(req, "com.upload", true, 2)
	caller.callChunk(req, "com.upload", false, 3)
	// All chunks reach the same callee with the same INVOCATION id.
	e.sync()
	got := callee
	if len(other.peer.in) > 0 {
		got = other
	}
	if n := len(got.peer.in); n != 3 {
		t.Fatalf("chosen callee has %d messages, want 3", n)
	}
	var invID uint64
	for i := 1; i <= 3; i++ {
		m := got.expect(proto.CodeInvocation)
		if invID == 0 {
			invID = m.Request
		}
		if m.Request != invID {
			t.Fatalf("chunk %d has INVOCATION id %d, want %d", i, m.Request, invID)
		}
		if m.Opt.Bool(proto.KeyProgress, false) != (i < 3) {
			t.Fatalf("chunk %d progress=%v", i, m.Opt.Bool(proto.KeyProgress, false))
		}
		if !reflect.DeepEqual(argsOf(m), []any{int64(i)}) {
			t.Fatalf("chunk %d args %v", i, argsOf(m))
		}
	}
	got.yield(invID, nil, []any{"stored"})
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatal("wrong request")
	}
}

func TestProgressiveInvocationUnsupportedCallee(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee := e.connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	callee.register("com.up", nil)
	caller := e.join(proto.JSON)
	req := caller.call("com.up", map[string]any{"progress": true}, nil, nil)
	caller.expectError(proto.CodeCall, req, proto.URIFeatureNotSupported)
}

func TestCancelModes(t *testing.T) {
	for _, mode := range []string{"skip", "kill", "killnowait"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			callee, caller := e.join(proto.JSON), e.join(proto.MsgPack)
			callee.register("com.slow", nil)
			req := caller.call("com.slow", nil, nil, nil)
			inv := callee.expect(proto.CodeInvocation)
			caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": mode})})
			switch mode {
			case "skip":
				caller.expectError(proto.CodeCall, req, proto.URICanceled)
				callee.quiet() // no INTERRUPT
				callee.yield(inv.Request, nil, []any{"late"})
				caller.quiet() // discarded
			case "killnowait":
				caller.expectError(proto.CodeCall, req, proto.URICanceled)
				m := callee.expect(proto.CodeInterrupt)
				if m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
					t.Fatalf("INTERRUPT %s mode=%q", describe(m), m.Opt.String(proto.KeyMode))
				}
				callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil), URI: []byte(proto.URICanceled)})
				caller.quiet()
			case "kill":
				m := callee.expect(proto.CodeInterrupt)
				if m.Opt.String(proto.KeyMode) != "kill" {
					t.Fatalf("mode %q", m.Opt.String(proto.KeyMode))
				}
				caller.quiet() // no ERROR until the callee answers
				callee.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: callee.opts(nil), URI: []byte(proto.URICanceled)})
				caller.expectError(proto.CodeCall, req, proto.URICanceled)
			}
		})
	}
}

// A callee that does not announce call_canceling gets skip semantics.
func TestCancelCalleeWithoutCanceling(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	caller := e.join(proto.JSON)
	callee.register("com.slow", nil)
	req := caller.call("com.slow", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "kill"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	callee.quiet()
}

// Cancel racing the yield: whichever the dealer sees first wins, and the
// caller gets exactly one answer.
func TestCancelRacingYield(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.r", nil)
	for i := 0; i < 50; i++ {
		req := caller.call("com.r", nil, nil, nil)
		inv := callee.expect(proto.CodeInvocation)
		done := make(chan struct{})
		go func() {
			callee.yield(inv.Request, nil, []any{"r"})
			close(done)
		}()
		caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
		<-done
		m := caller.recv()
		if m.Request != req || (m.Type != proto.CodeResult && m.Type != proto.CodeError) {
			t.Fatalf("got %v %s", m.Type, describe(m))
		}
		e.sync()
		// Drain a possible INTERRUPT; then nothing more for the caller.
		select {
		case m := <-callee.peer.in:
			if m.Type != proto.CodeInterrupt {
				t.Fatalf("callee got %v", m.Type)
			}
		default:
		}
		caller.quiet()
	}
}

func TestCallTimeout(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.CallTimeout = 10 * time.Second; c.MaxCallTimeout = 20 * time.Second })
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.slow", nil)

	// Caller's timeout.
	req := caller.call("com.slow", map[string]any{"timeout": 1000}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	e.advance(500 * time.Millisecond)
	caller.quiet()
	e.advance(600 * time.Millisecond)
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
	m := callee.expect(proto.CodeInterrupt)
	if m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" || m.Opt.String(proto.KeyReason) != proto.URITimeout {
		t.Fatalf("INTERRUPT %s %q %q", describe(m), m.Opt.String(proto.KeyMode), m.Opt.String(proto.KeyReason))
	}
	callee.yield(inv.Request, nil, nil)
	caller.quiet()

	// Default timeout.
	req = caller.call("com.slow", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
	e.advance(9 * time.Second)
	caller.quiet()
	e.advance(2 * time.Second)
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
	callee.expect(proto.CodeInterrupt)

	// Capped timeout.
	req = caller.call("com.slow", map[string]any{"timeout": 3600000}, nil, nil)
	callee.expect(proto.CodeInvocation)
	e.advance(21 * time.Second)
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
}

func TestForwardTimeout(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.fwd", map[string]any{"forward_timeout": true})
	caller.call("com.fwd", map[string]any{"timeout": 2500}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	if inv.Opt.Uint(proto.KeyTimeout) != 2500 {
		t.Fatalf("INVOCATION.Details.timeout = %d", inv.Opt.Uint(proto.KeyTimeout))
	}
}

func TestCalleeLeavesMidCall(t *testing.T) {
	for _, how := range []string{"goodbye", "drop"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			callee, caller := e.join(proto.JSON), e.join(proto.CBOR)
			callee.register("com.p", nil)
			r1 := caller.call("com.p", nil, nil, nil)
			r2 := caller.call("com.p", map[string]any{"receive_progress": true}, nil, nil)
			callee.expect(proto.CodeInvocation)
			callee.expect(proto.CodeInvocation)
			if how == "goodbye" {
				callee.goodbye()
			} else {
				callee.drop()
			}
			got := map[uint64]bool{}
			for i := 0; i < 2; i++ {
				m := caller.expect(proto.CodeError)
				if string(m.URI) != proto.URICanceled {
					t.Fatalf("error %s", m.URI)
				}
				got[m.Request] = true
			}
			if !got[r1] || !got[r2] {
				t.Fatalf("errors for %v", got)
			}
			req := caller.call("com.p", nil, nil, nil)
			caller.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
		})
	}
}

func TestCallerLeavesMidCall(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.p", nil)
	caller.call("com.p", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	caller.drop()
	m := callee.expect(proto.CodeInterrupt)
	if m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
		t.Fatalf("INTERRUPT %s", describe(m))
	}
	callee.yield(inv.Request, nil, nil) // discarded, no crash
	e.sync()
}

func TestUnregisterWithCallsPending(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	regID := callee.register("com.p", nil)
	req := caller.call("com.p", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	ureq := callee.nextReq()
	callee.send(&proto.Message{Type: proto.CodeUnregister, Request: ureq, ID: regID})
	if m := callee.expect(proto.CodeUnregistered); m.Request != ureq {
		t.Fatal("wrong UNREGISTERED")
	}
	// The pending call still completes.
	callee.yield(inv.Request, nil, []any{"finished"})
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatal("wrong result")
	}
	r2 := caller.call("com.p", nil, nil, nil)
	caller.expectError(proto.CodeCall, r2, proto.URINoSuchProcedure)
	// Unregistering again fails.
	ureq = callee.nextReq()
	callee.send(&proto.Message{Type: proto.CodeUnregister, Request: ureq, ID: regID})
	callee.expectError(proto.CodeUnregister, ureq, proto.URINoSuchRegistration)
}

func TestDuplicateCallRequestID(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.p", nil)
	req := caller.call("com.p", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.p")})
	m := caller.expect(proto.CodeAbort)
	if string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("ABORT %s", m.URI)
	}
}

func TestBusyCalleeRefusesCalls(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.p", nil)
	callee.peer.slow.Store(true)
	req := caller.call("com.p", nil, nil, nil)
	caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
	if n := callee.sh.Stats().CallsRefused.Load(); n != 1 {
		t.Fatalf("CallsRefused = %d", n)
	}
	if n := e.r.Stats().CallsRefused; n != 1 {
		t.Fatalf("Router.Stats().CallsRefused = %d", n)
	}
	callee.peer.slow.Store(false)
	caller.call("com.p", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
}

func TestResultTooBigForCaller(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.big", nil)
	caller.peer.maxLen.Store(200)
	req := caller.call("com.big", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	big := make([]byte, 1000)
	callee.yield(inv.Request, nil, []any{big})
	caller.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
}

// A payload that cannot be converted to the callee's serializer fails the
// call with invalid_argument instead of reaching the callee.
func TestUntranscodablePayload(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.JSON), e.join(proto.MsgPack)
	callee.register("com.p", nil)
	req := caller.nextReq()
	// A MsgPack float64 NaN: no JSON form.
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.p"),
		Args: proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}}})
	caller.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	callee.quiet()
	// A map with an integer key is no WAMP value at all: the message is
	// refused as malformed.
	caller.send(&proto.Message{Type: proto.CodeCall, Request: caller.nextReq(), Dict: caller.opts(nil), URI: []byte("com.p"),
		Args: proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0x81, 0x01, 0x02}}})
	if m := caller.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("integer key: got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
	callee.quiet()
}

// With the real clock and the router's own timer goroutine, a call timeout
// fires neither early nor much late, whatever else is armed.
func TestCallTimeoutRealClock(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) { c.Now = time.Now; c.manualTimers = false })
	callee, caller := e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.slow", nil)
	// A long timer armed first must not delay a shorter one armed later.
	caller.call("com.slow", map[string]any{"timeout": 60000}, nil, nil)
	callee.expect(proto.CodeInvocation)
	for _, ms := range []int{300, 100} {
		start := time.Now()
		req := caller.call("com.slow", map[string]any{"timeout": ms}, nil, nil)
		callee.expect(proto.CodeInvocation)
		m := caller.recv()
		took := time.Since(start)
		if m.Type != proto.CodeError || string(m.URI) != proto.URITimeout || m.Request != req {
			t.Fatalf("got %v %s", m.Type, describe(m))
		}
		// The deadline runs on the router's coarse clock (Config.Now): not
		// early, unless the timer goroutine that refreshes it is starved of
		// CPU; the slack (40 ms, four of the scheduler's 10 ms preemption
		// slices) keeps a loaded machine from failing the test.
		if took < time.Duration(ms)*time.Millisecond-40*time.Millisecond {
			t.Fatalf("timeout of %d ms fired after %v", ms, took)
		}
		callee.expect(proto.CodeInterrupt)
	}
	// While calls keep coming, deadlines come from the live coarse clock.
	callee.register("com.fast", nil)
	for i := range 50 {
		caller.call("com.fast", map[string]any{"timeout": 60000}, []any{i}, nil)
		inv := callee.expect(proto.CodeInvocation)
		callee.yield(inv.Request, nil, nil)
		caller.expect(proto.CodeResult)
	}
	start := time.Now()
	req := caller.call("com.slow", map[string]any{"timeout": 100}, nil, nil)
	callee.expect(proto.CodeInvocation)
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
	if took := time.Since(start); took < 75*time.Millisecond {
		t.Fatalf("timeout of 100 ms on the live coarse clock fired after %v", took)
	}
}

// The shard's timer heap (typed, so that pushing a timer does not box it)
// pops timers in deadline order, also after a sweep re-heapifies it.
func TestTimerHeapOrder(t *testing.T) {
	rng := seedRand()
	var h timerHeap
	var want []int64
	for i := range 5000 {
		due := rng.Int64N(1000)
		h.push(timer{due: due})
		want = append(want, due)
		if i%7 == 0 { // interleave pops
			slices.Sort(want)
			if got := h.pop().due; got != want[0] {
				t.Fatalf("pop %d: got %d, want %d", i, got, want[0])
			}
			want = want[1:]
		}
		if i == 2500 {
			rng.Shuffle(len(h), func(a, b int) { h[a], h[b] = h[b], h[a] })
			h.init()
		}
	}
	slices.Sort(want)
	for i, w := range want {
		if got := h.pop().due; got != w {
			t.Fatalf("final pop %d: got %d, want %d", i, got, w)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d timers left", len(h))
	}
}

// Calls answered long before their timeout, and sessions past their HELLO
// timeout, leave dead timers; the heap sweeps them instead of holding every
// one (and its session) until it is due.
func TestDeadTimersAreSwept(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.CallTimeout = time.Minute })
	callee, caller := e.join(proto.MsgPack), e.join(proto.MsgPack)
	callee.register("com.fast", nil)
	const calls = 5 * timerSweepMin
	for i := range calls {
		req := caller.call("com.fast", nil, []any{i}, nil)
		inv := callee.expect(proto.CodeInvocation)
		callee.yield(inv.Request, nil, nil)
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("RESULT for %d, want %d", m.Request, req)
		}
	}
	// A call still waiting keeps its timer, and still times out.
	callee.register("com.slow", nil)
	slow := caller.call("com.slow", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
	for range timerSweepMin {
		e.join(proto.JSON).drop()
	}
	e.sync()
	sh := e.r.Shard(0)
	var n int
	e.execs[0].do(func() { n = len(sh.timers) })
	if n > 2*timerSweepMin+2 {
		t.Fatalf("%d timers in the heap after %d answered calls and %d sessions; want at most %d",
			n, calls, timerSweepMin, 2*timerSweepMin+2)
	}
	e.advance(61 * time.Second)
	caller.expectError(proto.CodeCall, slow, proto.URITimeout)
}

// Chunks of a progressive-invocation call that arrive after the call ended
// (canceled here; a timeout or an early answer are the same) are dropped:
// they start no new call, and the caller, who has its ERROR, hears nothing
// more. A new call afterwards works.
func TestProgressiveInvocationChunksAfterCancel(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.CBOR), e.join(proto.JSON)
	callee.register("com.upload", nil)
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 1)
	inv := callee.expect(proto.CodeInvocation)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request {
		t.Fatalf("INTERRUPT for %d, want %d", m.Request, inv.Request)
	}
	caller.callChunk(req, "com.upload", true, 2)
	caller.callChunk(req, "com.upload", false, 3)
	e.sync()
	caller.quiet()
	callee.quiet()

	next := caller.nextReq()
	caller.callChunk(next, "com.upload", false, 4)
	m := callee.expect(proto.CodeInvocation)
	if !reflect.DeepEqual(argsOf(m), []any{int64(4)}) {
		t.Fatalf("new call's INVOCATION %s", describe(m))
	}
	callee.yield(m.Request, nil, []any{"done"})
	if r := caller.expect(proto.CodeResult); r.Request != next {
		t.Fatalf("RESULT for %d, want %d", r.Request, next)
	}
}

// A callee that has its UNREGISTERED gets no INVOCATION for that
// registration afterwards: Autobahn|Python, |JS and |Java treat an
// INVOCATION for a registration id they do not hold as a protocol
// violation and drop their session. On two shards, a CALL whose caller's
// shard picked the callee just before the callee's shard ran its
// UNREGISTER reached it after the UNREGISTERED (found by review). The
// callee's shard now sends it back as for a callee gone: a shared
// registration's call goes to the remaining callee, a sole callee's
// caller gets no_available_callee. The same for the meta API's
// remove_callee.
func TestNoInvocationAfterUnregistered(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	other := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	caller := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)

	// noInvocation checks that c gets nothing more.
	noInvocation := func(c *tc, regID uint64) {
		t.Helper()
		select {
		case m := <-c.peer.in:
			t.Errorf("callee got %v (registration %d) after its UNREGISTERED for registration %d: a real client drops its session", m.Type, m.ID, regID)
			if m.Type == proto.CodeInvocation {
				c.yield(m.Request, nil, []any{"from the unregistered callee"})
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	// servedByOther checks that the remaining callee serves call req.
	servedByOther := func(req uint64) {
		t.Helper()
		select {
		case m := <-other.peer.in:
			if m.Type != proto.CodeInvocation {
				t.Fatalf("other callee got %v", m.Type)
			}
			other.yield(m.Request, nil, []any{"from the remaining callee"})
		case <-time.After(time.Second):
			t.Fatalf("the remaining callee of the shared registration got no INVOCATION")
		}
		r := caller.expect(proto.CodeResult)
		if r.Request != req || !reflect.DeepEqual(argsOf(r), []any{"from the remaining callee"}) {
			t.Fatalf("caller got RESULT %d %v, want %d from the remaining callee", r.Request, argsOf(r), req)
		}
	}

	// A shared registration: the callee's shard is busy; its UNREGISTER
	// waits there, and the caller's shard picks the callee (first)
	// meanwhile.
	regID := callee.register("com.shared", map[string]any{"invoke": "first"})
	if id := other.register("com.shared", map[string]any{"invoke": "first"}); id != regID {
		t.Fatalf("registration ids %d and %d", regID, id)
	}
	release := stallExec(t, e, 1)
	ureq := callee.nextReq()
	callee.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: ureq, ID: regID})
	req := caller.call("com.shared", nil, []any{"x"}, nil)
	release()
	e.sync()
	if m := callee.expect(proto.CodeUnregistered); m.Request != ureq {
		t.Fatalf("UNREGISTERED for %d, want %d", m.Request, ureq)
	}
	noInvocation(callee, regID)
	servedByOther(req)

	// The same removed by the meta API (wamp.registration.remove_callee).
	regID = callee.register("com.shared2", map[string]any{"invoke": "first"})
	other.register("com.shared2", map[string]any{"invoke": "first"})
	release = stallExec(t, e, 1)
	mreq := caller.call("wamp.registration.remove_callee", nil, []any{regID, callee.id}, nil)
	req = caller.call("com.shared2", nil, []any{"x"}, nil)
	release()
	e.sync()
	if m := caller.expect(proto.CodeResult); m.Request != mreq {
		t.Fatalf("RESULT for %d, want remove_callee's %d", m.Request, mreq)
	}
	noInvocation(callee, regID)
	servedByOther(req)

	// A sole callee: the caller gets no_available_callee.
	regID = callee.register("com.sole", nil)
	release = stallExec(t, e, 1)
	ureq = callee.nextReq()
	callee.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: ureq, ID: regID})
	req = caller.call("com.sole", nil, []any{"x"}, nil)
	release()
	e.sync()
	if m := callee.expect(proto.CodeUnregistered); m.Request != ureq {
		t.Fatalf("UNREGISTERED for %d, want %d", m.Request, ureq)
	}
	noInvocation(callee, regID)
	caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
}
