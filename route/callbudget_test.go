package route

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The calls in flight are bounded on the router (Config.MaxCallsTotal), a
// client address or authid at most a quarter of them. Before, only the
// per-session cap (limits.calls_in_flight, 65,536) bounded them: a callee
// that reads its INVOCATIONs and never answers, called by sessions with no
// call timeout, held about 216 bytes per call (caller and callee), 14 MB
// per session at the cap, and one address may open 1,024 connections
// (about 14.5 GB).
func TestCallsInFlightBoundedOnRouter(t *testing.T) {
	const perSession, total = 32, 256
	const quarter = total / 4
	e := newEnv(t, 2, func(c *Config) { c.MaxPendingCalls = perSession; c.MaxCallsTotal = total })
	callee := e.connectFrom(0, proto.JSON, "192.0.2.1:1000")
	callee.hello("realm1", allFeatures, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	callee.register("com.sink", nil)

	// One address opens sessions on both shards and calls the callee,
	// which never answers, until refused.
	var held int
	var attackers []*tc
	for i := 0; i < 2*total/perSession && held < 2*total; i++ {
		a := e.connectFrom(i%2, proto.JSON, fmt.Sprintf("198.51.100.7:%d", 4000+i))
		a.hello("realm1", allFeatures, nil)
		a.id = a.expect(proto.CodeWelcome).ID
		attackers = append(attackers, a)
		for j := 0; j < perSession; j++ {
			req := a.call("com.sink", nil, nil, nil)
			e.sync()
			select {
			case m := <-a.peer.in:
				if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
					t.Fatalf("call %d of session %d: got %v %s", j, i, m.Type, describe(m))
				}
			default:
				held++
				continue
			}
			break // this session is refused; try another
		}
	}
	for held > 0 && len(callee.peer.in) > 0 {
		<-callee.peer.in
	}
	st := e.r.Stats()
	t.Logf("one address's calls held pending: %d (router bound %d, its quarter %d); %d in flight, %d refused", held, total, quarter, callsInFlight(e), st.CallsRefusedTotal)
	if n := callsInFlight(e); held != quarter || n != quarter || st.CallsHeld != quarter {
		t.Fatalf("one address held %d calls in flight (%d on the router, %d counted), want its quarter %d of %d", held, n, st.CallsHeld, quarter, total)
	}
	if st.CallsRefusedTotal == 0 {
		t.Fatalf("no refusal counted")
	}

	// Another address's call goes through.
	b := e.connectFrom(1, proto.JSON, "203.0.113.9:4000")
	b.hello("realm1", allFeatures, nil)
	b.id = b.expect(proto.CodeWelcome).ID
	b.call("com.sink", nil, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, []any{1})
	b.expect(proto.CodeResult)

	// The address's calls go back to it when they end: its sessions
	// leave, and it may call again. Owners that take all they may never
	// fill the router: each stays below the room left free (before, four
	// at their quarters held all of it and every other call was refused).
	for _, a := range attackers {
		a.goodbye()
	}
	e.sync()
	if n, st := callsInFlight(e), e.r.Stats(); n != 0 || st.CallsHeld != 0 {
		t.Fatalf("%d calls in flight (%d counted) after the callers left", n, st.CallsHeld)
	}
	for len(callee.peer.in) > 0 {
		<-callee.peer.in // the INTERRUPTs of their calls
	}
	// fill has sessions of one address call until one is refused, and
	// returns the calls it holds.
	port := 5000
	fill := func(addr string) (held int) {
		for {
			c := e.connectFrom(port%2, proto.JSON, fmt.Sprintf("%s:%d", addr, port))
			port++
			c.hello("realm1", allFeatures, nil)
			c.expect(proto.CodeWelcome)
			for j := 0; j < perSession; j++ {
				req := c.call("com.sink", nil, nil, nil)
				e.sync()
				select {
				case m := <-c.peer.in:
					if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
						t.Fatalf("%s: got %v %s", addr, m.Type, describe(m))
					}
					// The refusal says why, also when the owner holds less
					// than its quarter and the router is not full (the
					// fourth owner on): before, it named those two only.
					if a := argsOf(m); len(a) != 1 || !strings.Contains(fmt.Sprint(a[0]), "fewer than the router has left free") {
						t.Fatalf("%s: refused with %s, which does not name the room left free", addr, describe(m))
					}
					return held
				default:
					callee.expect(proto.CodeInvocation)
					held++
				}
			}
		}
	}
	// Each owner in turn takes all it may: the first three their quarter
	// (64), the fourth half of the 64 left (32: it stops where its calls
	// equal the room left), a fifth half of the 32 then left, and so on.
	var got []int
	for k, want := range []int{quarter, quarter, quarter, 32, 16, 8} {
		n := fill(fmt.Sprintf("198.51.100.%d", 7+k))
		got = append(got, n)
		if n != want {
			t.Fatalf("owners in turn held %v calls, want the last %d", got, want)
		}
	}
	if n, st := callsInFlight(e), e.r.Stats(); n != total-8 || st.CallsHeld != total-8 {
		t.Fatalf("%d calls in flight (%d counted), want %d", n, st.CallsHeld, total-8)
	}
	// Another address still gets its call through, and is answered.
	req := b.call("com.sink", nil, nil, nil)
	inv = callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, []any{1})
	if m := b.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT for %d, want %d", m.Request, req)
	}
}

// callsInFlight returns the router's calls in flight, as its shards count
// them (Traffic).
func callsInFlight(e *env) int64 {
	e.t.Helper()
	tr, err := e.r.Traffic(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return tr.CallsInFlight
}

// Calls to other nodes' callees count in the caller's node's budget (they
// hold an outCall there until they end), and go out of it when answered or
// when the caller leaves; the callee's node does not count them (its
// Config.MaxMeshInvocations does).
func TestCallsInFlightBoundedOnRouterMesh(t *testing.T) {
	const total = 16
	mm, es := newMemMesh(t, 2, 2, func(c *Config) { c.MaxCallsTotal = total; c.MaxMeshCalls = 64 })
	callee := es[1].join(proto.JSON)
	callee.register("com.hold", nil)
	mm.sync()
	var callers []*tc
	var invs []uint64
	for i := 0; i < 2; i++ {
		a := es[0].connectFrom(i, proto.JSON, fmt.Sprintf("198.51.100.7:%d", 4000+i))
		a.hello("realm1", allFeatures, nil)
		a.id = a.expect(proto.CodeWelcome).ID
		callers = append(callers, a)
		for j := 0; j < total/4/2; j++ {
			a.call("com.hold", nil, nil, nil)
			invs = append(invs, callee.expect(proto.CodeInvocation).Request)
		}
	}
	req := callers[1].call("com.hold", nil, nil, nil)
	callers[1].expectError(proto.CodeCall, req, proto.URIUnavailable)
	mm.sync()
	callee.quiet() // the refused call never left the caller's node
	if st0, st1 := es[0].r.Stats(), es[1].r.Stats(); st0.CallsHeld != total/4 || st0.CallsRefusedTotal != 1 || st1.CallsHeld != 0 {
		t.Fatalf("caller's node: %d calls counted, %d refused; callee's node: %d counted; want %d, 1, 0", st0.CallsHeld, st0.CallsRefusedTotal, st1.CallsHeld, total/4)
	}
	// An answered call frees its place; a leaving caller frees its calls.
	callee.yield(invs[0], nil, nil)
	callers[0].expect(proto.CodeResult)
	mm.sync()
	callers[1].call("com.hold", nil, nil, nil)
	callee.expect(proto.CodeInvocation)
	callers[1].goodbye()
	mm.sync()
	if st := es[0].r.Stats(); st.CallsHeld != total/4/2-1 {
		t.Fatalf("%d calls counted after a caller left, want %d", st.CallsHeld, total/4/2-1)
	}
}

// An authid's quarter of Config.MaxCallsTotal is its realm's: users are
// configured per realm (realms[].users), so "alice" of one realm and
// "alice" of another are two principals with two credentials. Before, the
// owner key was the authid alone, router-wide: one tenant's user holding
// its quarter made every CALL of the other realm's same-named user
// refused wamp.error.unavailable.
func TestCallsTotalAuthidQuarterPerRealm(t *testing.T) {
	const total = 16
	e := newEnv(t, 2, func(c *Config) {
		c.MaxCallsTotal = total
		c.Realms = append(c.Realms, RealmConfig{Name: "tenant2", Authenticators: []Authenticator{trustAuth{}}})
	})
	login := func(realm, authid string) *tc {
		c := e.connect(proto.JSON)
		c.hello(realm, allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	sink1, sink2 := login("trusted", "svc"), login("tenant2", "svc")
	sink1.register("com.sink", nil)
	sink2.register("com.sink", nil)
	a1 := login("trusted", "alice")
	for i := 0; i < total/4; i++ {
		a1.call("com.sink", nil, nil, nil)
		sink1.expect(proto.CodeInvocation)
	}
	req := a1.call("com.sink", nil, nil, nil)
	a1.expectError(proto.CodeCall, req, proto.URIUnavailable) // its quarter
	a2 := login("tenant2", "alice")
	a2.call("com.sink", nil, nil, nil)
	e.sync()
	select {
	case m := <-a2.peer.in:
		t.Fatalf("the other realm's alice, with no call in flight, got %v %s: it shares the first realm's alice's quarter", m.Type, describe(m))
	default:
	}
	if m := sink2.expect(proto.CodeInvocation); m.Request == 0 {
		t.Fatal("no invocation")
	}
}
