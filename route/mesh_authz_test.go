package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// meshRoles are the roles of the tests of a shared registration whose
// callees have different roles: limited may register com. but is denied
// com.secret., full may register com., op may call com.
var meshRoles = []Role{
	{Name: "limited", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}, {URI: "com.secret.", Match: proto.MatchPrefix}}},
	{Name: "full", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}}},
	{Name: "op", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Call: true}}},
}

// ticketMesh is ticketRealm on each of n nodes of a mesh: login(i, authid)
// logs authid (of role users[authid]) in on node i.
func ticketMesh(t *testing.T, n int, users map[string]string, roles []Role) (*memMesh, []*env, func(int, string) *tc) {
	t.Helper()
	pw, _ := HashPassword("pw", 1000)
	var us []*User
	for id, role := range users {
		us = append(us, &User{AuthID: id, Roles: []string{role}, Password: pw})
	}
	u, err := NewUsers(us)
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewRBAC(roles)
	if err != nil {
		t.Fatal(err)
	}
	mm, es := newMemMesh(t, n, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: u, Authorizer: z, Authenticators: []Authenticator{&TicketAuth{Users: u}}}}
	})
	login := func(i int, authid string) *tc {
		c := es[i].connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": authid}, func(map[string]any) string { return "pw" }))
		return c
	}
	return mm, es, login
}

// A callee on another node refused for its role (the invocation's URI
// denied to it, meshDeliverInvocation: mayInvoke) answers as a callee's
// wamp.error.unavailable, so that the caller's node reroutes the call to
// a callee that may take it; not_authorized only when every callee that
// had the call was refused so. Before, the call failed not_authorized at
// once whenever the refused callee's turn came (on one node it was
// rerouted since 79ea01b).
func TestMeshSharedRegistrationMixedRolesRerouted(t *testing.T) {
	users := map[string]string{"a": "limited", "b": "full", "c": "limited", "op": "op"}
	t.Run("roundrobin over two other nodes", func(t *testing.T) {
		// The caller on A, the denied callee on B, the allowed one on C:
		// round robin alternates between B and C (A has no callee).
		mm, es, login := ticketMesh(t, 3, users, meshRoles)
		a := login(1, "a")
		a.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
		b := login(2, "b")
		regB := b.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
		mm.sync()
		op := login(0, "op")
		for i := 0; i < 6; i++ {
			req := op.call("com.secret.x", nil, nil, nil)
			mm.sync()
			inv := allowedInvoked(t, i, b, op)
			b.yield(inv.Request, nil, nil)
			mm.sync()
			if r := op.recv(); r.Type != proto.CodeResult || r.Request != req {
				t.Fatalf("call %d: the caller got %s %s %v, want its RESULT", i, r.Type, r.URI, argsOf(r))
			}
		}
		if m := tryRecv(a); m != nil {
			t.Fatalf("the callee denied com.secret. got %s", m.Type)
		}
		// Each call went to B first: the reroute's pick moves the
		// rotation on too, as on one node.
		if st := es[0].r.Stats(); st.CallsRerouted != 6 || st.CallsRerouteExhausted != 0 {
			t.Fatalf("caller's node: rerouted %d exhausted %d, want 6 0", st.CallsRerouted, st.CallsRerouteExhausted)
		}
		// Every callee of the limited role: not_authorized, as before,
		// with the refusal's text.
		b.send(&proto.Message{Type: proto.CodeUnregister, Request: b.nextReq(), ID: regB})
		b.expect(proto.CodeUnregistered)
		c := login(2, "c")
		c.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
		mm.sync()
		for i := 0; i < 2; i++ {
			req := op.call("com.secret.x", nil, nil, nil)
			mm.sync()
			r := op.expectError(proto.CodeCall, req, proto.URINotAuthorized)
			if args := argsOf(r); len(args) != 1 || args[0] != `the callee of the registration matching "com.secret.x" is not authorized for it` {
				t.Fatalf("call %d with no callee allowed: ERROR args %v", i, args)
			}
		}
		if st := es[0].r.Stats(); st.CallsRerouteExhausted != 0 {
			t.Fatalf("caller's node: %d reroutes exhausted, want 0", st.CallsRerouteExhausted)
		}
		if m := tryRecv(a); m != nil {
			t.Fatalf("the callee denied com.secret. got %s", m.Type)
		}
		if m := tryRecv(c); m != nil {
			t.Fatalf("the callee denied com.secret. got %s", m.Type)
		}
		assertNothingPending(t, mm)
		for _, e := range es {
			assertIdle(t, e)
		}
	})
	t.Run("first, the allowed callee on the caller's node", func(t *testing.T) {
		// B's denied callee registered first, A's allowed one (on the
		// caller's node) after it: each call goes to B first.
		mm, es, login := ticketMesh(t, 2, users, meshRoles)
		a := login(1, "a")
		a.register("com.", map[string]any{"match": "prefix", "invoke": "first"})
		mm.sync()
		es[0].clock.add(time.Second)
		b := login(0, "b")
		b.register("com.", map[string]any{"match": "prefix", "invoke": "first"})
		mm.sync()
		op := login(0, "op")
		for i := 0; i < 2; i++ {
			req := op.call("com.secret.x", nil, nil, nil)
			mm.sync()
			inv := allowedInvoked(t, i, b, op)
			b.yield(inv.Request, nil, nil)
			if r := op.recv(); r.Type != proto.CodeResult || r.Request != req {
				t.Fatalf("call %d: the caller got %s %s %v, want its RESULT", i, r.Type, r.URI, argsOf(r))
			}
		}
		if st := es[0].r.Stats(); st.CallsRerouted != 2 {
			t.Fatalf("caller's node: rerouted %d, want 2", st.CallsRerouted)
		}
		if m := tryRecv(a); m != nil {
			t.Fatalf("the callee denied com.secret. got %s", m.Type)
		}
	})
}

// allowedInvoked returns the INVOCATION the allowed callee b has waiting
// for call i (after the mesh's sync), and fails with what the caller op
// got instead when it has none.
func allowedInvoked(t *testing.T, i int, b, op *tc) *proto.Message {
	t.Helper()
	select {
	case inv := <-b.peer.in:
		if inv.Type != proto.CodeInvocation {
			t.Fatalf("call %d: the callee that may serve com.secret.x got %s, want INVOCATION", i, inv.Type)
		}
		return inv
	default:
	}
	if r := tryRecv(op); r != nil {
		t.Fatalf("call %d: the callee that may serve com.secret.x got no INVOCATION; the caller got %s %s %v", i, r.Type, r.URI, argsOf(r))
	}
	t.Fatalf("call %d: neither the allowed callee nor the caller got anything", i)
	return nil
}

// With a node of the previous release, which neither asks for a refusal
// for a callee's role to be answered as unavailable nor reads the request
// (ccRoleReroute), such a refusal fails the call not_authorized as in that
// release, both ways: a callee on a node of the previous release refused
// so fails the call (it answers not_authorized; the caller's node does
// not reroute it), and this node answers a call from a node of the
// previous release not_authorized, not as unavailable, which that node
// would end no_available_callee (the harness fails the test on such an
// answer).
func TestMeshRoleRefusalPreviousRelease(t *testing.T) {
	users := map[string]string{"a": "limited", "b": "full", "op": "op"}
	for _, prev := range []int{1, 0} {
		name := map[int]string{1: "callee's node of the previous release", 0: "caller's node of the previous release"}[prev]
		t.Run(name, func(t *testing.T) {
			mm, _, login := ticketMesh(t, 3, users, meshRoles)
			mm.nodes[prev].prevRelease.Store(true)
			a := login(1, "a")
			a.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
			b := login(2, "b")
			b.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
			mm.sync()
			op := login(0, "op")
			refused := 0
			for i := 0; i < 4; i++ {
				req := op.call("com.secret.x", nil, nil, nil)
				mm.sync()
				select {
				case inv := <-b.peer.in:
					b.yield(inv.Request, nil, nil)
					mm.sync()
					if r := op.recv(); r.Type != proto.CodeResult || r.Request != req {
						t.Fatalf("call %d: the caller got %s %s, want its RESULT", i, r.Type, r.URI)
					}
				default:
					op.expectError(proto.CodeCall, req, proto.URINotAuthorized)
					refused++
				}
			}
			if refused != 2 {
				t.Fatalf("%d of 4 calls refused, want 2 (round robin)", refused)
			}
			if m := tryRecv(a); m != nil {
				t.Fatalf("the callee denied com.secret. got %s", m.Type)
			}
		})
	}
}
