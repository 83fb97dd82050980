package route

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A reload that changes a realm's anonymous role takes the old role away
// from the anonymous sessions already joined, as it does from a user who
// lost a role: they are told GOODBYE rather than keep acting with the
// grants of a role the realm no longer gives them.
func TestReloadAnonymousRoleChanged(t *testing.T) {
	z, err := NewRBAC([]Role{
		{Name: "staff", Permissions: []Permission{{URI: "app.", Match: proto.MatchPrefix, Call: true, Publish: true, Subscribe: true}}},
		{Name: "guest", Permissions: []Permission{{URI: "app.public.", Match: proto.MatchPrefix, Subscribe: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Anonymous: true, AnonymousRole: "staff", Authorizer: z}}
	})
	anon := e.connect(proto.JSON)
	anon.hello("secure", allFeatures, nil)
	if w := anon.expect(proto.CodeWelcome); w.Opt.String(proto.KeyAuthRole) != "staff" {
		t.Fatalf("anonymous role %q", w.Opt.String(proto.KeyAuthRole))
	}
	nc := *e.r.Realm("secure").conf()
	nc.AnonymousRole = "guest" // staff stays defined (for users), but no longer for anonymous sessions
	if err := e.r.Reload([]RealmConfig{nc}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	req := anon.publish("app.orders", map[string]any{"acknowledge": true}, nil, nil)
	m := anon.recv()
	if m.Type == proto.CodePublished && m.Request == req {
		t.Fatal("an anonymous session kept the role the realm no longer gives anonymous sessions, and published with it")
	}
	if m.Type != proto.CodeGoodbye || string(m.URI) != proto.CloseKilled || !strings.Contains(m.Opt.String(proto.KeyMessage), "guest") {
		t.Fatalf("got %v %s %q, want GOODBYE %s", m.Type, m.URI, m.Opt.String(proto.KeyMessage), proto.CloseKilled)
	}
	// New anonymous sessions get the new role.
	c := e.connect(proto.JSON)
	c.hello("secure", allFeatures, nil)
	if w := c.expect(proto.CodeWelcome); w.Opt.String(proto.KeyAuthRole) != "guest" {
		t.Fatalf("new anonymous role %q", w.Opt.String(proto.KeyAuthRole))
	}
}

// "wamp." procedures are the router's: a pattern registration whose
// pattern does not itself start with "wamp." (a prefix "wamp" or "wam", a
// wildcard "..get") must not receive calls to them, or a client could
// answer in the router's name a meta procedure another client calls.
func TestPatternRegistrationDoesNotCaptureReservedProcedures(t *testing.T) {
	e := newEnv(t, 2, nil)
	attacker, victim := e.join(proto.JSON), e.join(proto.JSON)
	attacker.register("wamp", map[string]any{"match": "prefix"})
	attacker.register("wam", map[string]any{"match": "prefix"})
	attacker.register("..frobnicate", map[string]any{"match": "wildcard"})
	req := victim.call("wamp.registration.frobnicate", nil, []any{1, 2}, nil)
	e.sync()
	select {
	case m := <-attacker.peer.in:
		t.Fatalf("a call to a reserved procedure reached a client's pattern registration: %v %s", m.Type, describe(m))
	default:
	}
	victim.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	// A meta procedure is the router's own, pattern or not.
	attacker.register("..remove_callee", map[string]any{"match": "wildcard"})
	req = victim.call("wamp.registration.remove_callee", nil, []any{1, 2}, nil)
	victim.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	attacker.quiet()
}

// A session's cache of authorization decisions is bounded in bytes, not
// only in entries: each event is checked against its subscriber's cache
// by topic, and a publisher sending to 256 distinct 4 KiB topics under a
// pattern that many sessions subscribe to made each hold 1 MiB of it.
// The events are still checked and delivered.
func TestAuthzCacheBoundedInBytes(t *testing.T) {
	sr := newSecureRealm(t, Permission{URI: "com.", Match: proto.MatchPrefix, Subscribe: true})
	sub := sr.login("u")
	sub.subscribe("com.", map[string]any{"match": "prefix"})
	pub := sr.login("root")
	const n = 300
	for i := range n {
		for _, size := range []int{40, 200, 4000} {
			topic := "com." + strings.Repeat("t", size) + "." + strconv.Itoa(i)
			pub.publish(topic, nil, []any{i}, nil)
			sub.expect(proto.CodeEvent)
		}
	}
	var entries, bytes, longest int
	sub.exec.do(func() {
		for _, m := range sub.sess.authz.m {
			entries += len(m)
			for k := range m {
				bytes += len(k)
				longest = max(longest, len(k))
			}
		}
	})
	if bytes > int(numActions)*8<<10 || longest > 256 || entries > int(numActions)*256 {
		t.Fatalf("the cache holds %d decisions, %d bytes of URIs, the longest %d bytes", entries, bytes, longest)
	}
}

// A reload re-checks only the sessions whose role's grants may have
// changed (sameGrants): the same permissions in another order are the
// same grants, another role's change is not this role's, an RBAC against
// none (security turned on or off) or an opaque Authorizer may differ.
func TestSameGrants(t *testing.T) {
	a := Permission{URI: "com.app.", Match: proto.MatchPrefix, Call: true}
	b := Permission{URI: "com.app.x", Match: proto.MatchExact, Subscribe: true}
	mk := func(roles ...Role) *RBAC {
		z, err := NewRBAC(roles)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	before := mk(Role{Name: "user", Permissions: []Permission{a, b}}, Role{Name: "admin", Permissions: []Permission{a}})
	after := mk(Role{Name: "admin", Permissions: []Permission{a, b}}, Role{Name: "user", Permissions: []Permission{b, a}})
	b.Subscribe = false
	narrowed := mk(Role{Name: "user", Permissions: []Permission{a, b}})
	for _, c := range []struct {
		x, y Authorizer
		role string
		same bool
	}{
		{nil, nil, "user", true},
		{before, before, "user", true},
		{before, after, "user", true},
		{before, after, "admin", false},
		{before, narrowed, "user", false},
		{before, after, "nobody", true},
		{before, nil, "user", false},
		{nil, before, "user", false},
		{allowAll{}, allowAll{}, "user", false},
	} {
		if got := sameGrants(c.x, c.y, c.role); got != c.same {
			t.Errorf("sameGrants(%T, %T, %q) = %v, want %v", c.x, c.y, c.role, got, c.same)
		}
	}
}

type allowAll struct{}

func (allowAll) Authorize(string, Action, string) bool { return true }

// ticketRealm is a secured realm "secure" with users logging in by ticket
// (password "pw") as the roles given.
func ticketRealm(t *testing.T, users map[string]string, roles []Role) (*env, func(authid string) *tc) {
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
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: u, Authorizer: z, Authenticators: []Authenticator{&TicketAuth{Users: u}}}}
	})
	login := func(authid string) *tc {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": authid}, func(map[string]any) string { return "pw" }))
		return c
	}
	return e, login
}

// A role granted register on one exact procedure only may not make a
// prefix registration of that string: the REGISTER's pattern was checked
// as if it were a concrete URI, so the exact grant on "plant1.dev1"
// authorized the prefix "plant1.dev1", which (WAMP prefixes are string
// prefixes, and the longest prefix wins) took every call to
// plant1.dev1.*, plant1.dev10.*, plant1.dev1xyz ... from the catch-all
// service that serves them, and those calls then failed
// wamp.error.not_authorized. A pattern is now authorized only by a
// permission covering all of it (RBAC.AuthorizePattern).
func TestExactRegisterGrantAllowsPrefixRegistration(t *testing.T) {
	_, login := ticketRealm(t, map[string]string{"svc": "svc", "dev1": "device", "op": "op"}, []Role{
		{Name: "svc", Permissions: []Permission{{URI: "plant1.", Match: proto.MatchPrefix, Register: true}}},
		{Name: "device", Permissions: []Permission{{URI: "plant1.dev1", Match: proto.MatchExact, Register: true}}},
		{Name: "op", Permissions: []Permission{{URI: "plant1.", Match: proto.MatchPrefix, Call: true}}},
	})
	svc, dev, op := login("svc"), login("dev1"), login("op")
	svc.register("plant1.", map[string]any{"match": "prefix"}) // the catch-all service
	dev.register("plant1.dev1", nil)                           // what the device was granted
	dev2 := login("dev1")
	req := dev2.nextReq()
	dev2.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: dev2.opts(map[string]any{"match": "prefix"}), URI: []byte("plant1.dev1")})
	m := dev2.recv()
	if m.Type != proto.CodeError || string(m.URI) != proto.URINotAuthorized {
		t.Errorf("a role granted register on the exact procedure plant1.dev1 only got %s %s for a prefix REGISTER of plant1.dev1, want ERROR %s",
			m.Type, m.URI, proto.URINotAuthorized)
	}
	// What it costs the service: calls it serves now fail.
	failed := 0
	for _, uri := range []string{"plant1.dev10.status", "plant1.dev1.config", "plant1.dev1xyz"} {
		req := op.call(uri, nil, nil, nil)
		if inv := tryRecv(svc); inv != nil && inv.Type == proto.CodeInvocation {
			svc.yield(inv.Request, nil, nil)
		}
		r := op.recv()
		if r.Type == proto.CodeError && r.Request == req {
			failed++
			t.Logf("call %s: ERROR %s (the device's prefix registration took it)", uri, r.URI)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 3 calls the catch-all service serves failed instead of reaching it", failed)
	}
}

// tryRecv returns the next message of c if one arrives within the
// shards' next turn (e.sync), else nil.
func tryRecv(c *tc) *proto.Message {
	c.e.sync()
	select {
	case m := <-c.peer.in:
		return m
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}

// RBAC.AuthorizePattern: a prefix or wildcard pattern is decided by the
// most specific permission covering all of it; an exact permission covers
// no pattern, a wildcard one no prefix pattern, and one the pattern only
// overlaps does not decide.
func TestRBACPatternCoverage(t *testing.T) {
	z, err := NewRBAC([]Role{
		{Name: "exact", Permissions: []Permission{{URI: "a.b", Match: proto.MatchExact, Register: true, Subscribe: true}}},
		{Name: "prefix", Permissions: []Permission{
			{URI: "a.", Match: proto.MatchPrefix, Register: true, Subscribe: true},
			{URI: "a.secret.", Match: proto.MatchPrefix},
		}},
		{Name: "wild", Permissions: []Permission{
			{URI: "a.", Match: proto.MatchWildcard, Register: true},
			{URI: "a..c", Match: proto.MatchWildcard, Subscribe: true},
		}},
		{Name: "mixed", Permissions: []Permission{
			{URI: "a.", Match: proto.MatchPrefix, Register: true},
			{URI: "a..c", Match: proto.MatchWildcard},
		}},
		{Name: "all", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Register: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const P, W, E = proto.MatchPrefix, proto.MatchWildcard, proto.MatchExact
	R, S := ActionRegister, ActionSubscribe
	for _, k := range []struct {
		role    string
		a       Action
		m       proto.Match
		pattern string
		want    bool
	}{
		{"exact", R, E, "a.b", true},
		{"exact", R, P, "a.b", false}, // allowed before: the exact grant matched the string
		{"exact", S, P, "a.b", false},
		{"exact", R, W, "a.b", false}, // a wildcard pattern without a wildcard: still a pattern
		{"exact", R, P, "a.bc", false},
		{"prefix", R, P, "a.", true},
		{"prefix", R, P, "a.b", true},
		{"prefix", S, P, "a.b.c", true},
		{"prefix", R, P, "a", false}, // "a" matches "ab.x" too
		{"prefix", R, W, "a..c", true},
		{"prefix", R, W, "a.b.", true},
		{"prefix", R, W, ".a.c", false},
		{"prefix", R, P, "a.secret.x", false}, // the deny covers it
		{"prefix", R, W, "a.secret..x", false},
		{"prefix", R, P, "a.sec", true}, // overlaps the deny only: decided per URI at invocation
		{"wild", R, W, "a.", true},
		{"wild", R, W, "a.b", true},
		{"wild", R, P, "a.", false},  // allowed before: "a." taken for a URI matched "a."
		{"wild", R, P, "a.b", false}, // allowed before, and it matches "a.b.c.d"
		{"wild", R, W, "a.b.c", false},
		{"wild", R, W, ".b", false},
		{"wild", S, W, "a..c", true},
		{"wild", S, W, "a.b.c", true},
		{"wild", S, W, "..c", false},
		{"wild", S, W, "a..", false},
		{"wild", S, P, "a.b.c", false},
		{"mixed", R, W, "a..c", false}, // the covering wildcard deny is the more specific
		{"mixed", R, W, "a.b.c", false},
		{"mixed", R, W, "a..d", true},
		{"mixed", R, P, "a.", true},
		{"all", R, P, "x", true},
		{"all", R, W, ".x.", true},
		{"nobody", R, P, "a.", false},
	} {
		if got := z.AuthorizePattern(k.role, k.a, k.m, k.pattern); got != k.want {
			t.Errorf("role %s: %s %s %q = %v, want %v", k.role, k.a, k.m, k.pattern, got, k.want)
		}
	}
}

// A reload's re-check judges a pattern registration or subscription as
// its REGISTER or SUBSCRIBE is judged, as a pattern: a role whose grant
// on "app." became an exact one on "app.dev1" and a wildcard one on
// "app." loses its prefix registration and subscription "app.dev1"
// (which the re-check, taking the pattern for a URI, let it keep) and
// keeps the exact registration and the wildcard subscription.
func TestReloadRechecksPatternsAsPatterns(t *testing.T) {
	sr := newSecureRealm(t, Permission{URI: "app.", Match: proto.MatchPrefix, Register: true, Subscribe: true})
	c := loginTicket(sr.e, "u", revocationRoles)
	keepReg := c.register("app.dev1", nil)
	preReg := c.register("app.dev1", map[string]any{"match": "prefix"})
	keepSub := c.subscribe("app.", map[string]any{"match": "wildcard"})
	preSub := c.subscribe("app.dev1", map[string]any{"match": "prefix"})

	sr.regrant(Permission{URI: "app.dev1", Match: proto.MatchExact, Register: true, Subscribe: true},
		Permission{URI: "app.", Match: proto.MatchWildcard, Register: true, Subscribe: true})
	got := map[string]uint64{}
	for i := 0; i < 2; i++ {
		m := c.recv()
		switch m.Type {
		case proto.CodeUnregistered:
			id, reason := revocationOf(t, m, "registration")
			got["registration "+reason] = id
		case proto.CodeUnsubscribed:
			id, reason := revocationOf(t, m, "subscription")
			got["subscription "+reason] = id
		default:
			t.Fatalf("%v %s, want a revocation", m.Type, describe(m))
		}
	}
	want := map[string]uint64{"registration " + proto.URINotAuthorized: preReg, "subscription " + proto.URINotAuthorized: preSub}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("revocations %v, want %v", got, want)
	}
	c.quiet()
	root := sr.login("root")
	req := root.call("app.dev1", nil, nil, nil)
	if inv := c.expect(proto.CodeInvocation); inv.ID != keepReg {
		t.Fatalf("INVOCATION of registration %d, want %d", inv.ID, keepReg)
	} else {
		c.yield(inv.Request, nil, nil)
	}
	if m := root.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT for %d, want %d", m.Request, req)
	}
	root.publish("app.x", nil, []any{"x"}, nil)
	if ev := c.expect(proto.CodeEvent); ev.ID != keepSub {
		t.Fatalf("EVENT of subscription %d, want %d", ev.ID, keepSub)
	}
}

// A shared pattern registration whose callees have different roles, one
// denied a part of the pattern: a call to that part goes to a callee that
// may take it. The callee picked in turn is checked on its shard
// (deliverInvocation: mayInvoke), and its refusal is now rerouted as a
// callee's wamp.error.unavailable is; before, the call failed
// not_authorized whenever the denied callee's turn came (3 of 6, round
// robin). With no callee allowed, the call still fails not_authorized.
func TestSharedRegistrationMixedRolesRerouted(t *testing.T) {
	_, login := ticketRealm(t, map[string]string{"a": "limited", "b": "full", "c": "limited", "op": "op"}, []Role{
		{Name: "limited", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}, {URI: "com.secret.", Match: proto.MatchPrefix}}},
		{Name: "full", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}}},
		{Name: "op", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Call: true}}},
	})
	a, b, op := login("a"), login("b"), login("op")
	a.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
	regB := b.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
	for i := 0; i < 6; i++ {
		req := op.call("com.secret.x", nil, nil, nil)
		inv := b.recv()
		if inv.Type != proto.CodeInvocation {
			t.Fatalf("call %d: the callee that may serve com.secret.x got %s, want INVOCATION", i, inv.Type)
		}
		b.yield(inv.Request, nil, nil)
		if r := op.recv(); r.Type != proto.CodeResult || r.Request != req {
			t.Fatalf("call %d: the caller got %s %s, want its RESULT", i, r.Type, r.URI)
		}
	}
	if m := tryRecv(a); m != nil {
		t.Fatalf("the callee denied com.secret. got %s", m.Type)
	}
	// Only callees of the limited role: not_authorized, as before.
	c := login("c")
	b.send(&proto.Message{Type: proto.CodeUnregister, Request: b.nextReq(), ID: regB})
	b.expect(proto.CodeUnregistered)
	c.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
	for i := 0; i < 2; i++ {
		req := op.call("com.secret.x", nil, nil, nil)
		if r := op.recv(); r.Type != proto.CodeError || r.Request != req || string(r.URI) != proto.URINotAuthorized {
			t.Fatalf("call %d with no callee allowed: %s %s, want ERROR %s", i, r.Type, r.URI, proto.URINotAuthorized)
		}
	}
	if m := tryRecv(a); m != nil {
		t.Fatalf("the callee denied com.secret. got %s", m.Type)
	}
}

// A call some of whose callees are refused for their role while the others
// answer wamp.error.unavailable ends no_available_callee, whatever the
// order: not_authorized is for a call every callee that had it was refused
// for its role. Before, the last answer decided: with round robin the call
// that reached the unavailable callee first ended not_authorized (the
// denied callee's refusal came last), the other no_available_callee.
func TestSharedRegistrationRefusedAndUnavailable(t *testing.T) {
	_, login := ticketRealm(t, map[string]string{"a": "limited", "b": "full", "op": "op"}, []Role{
		{Name: "limited", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}, {URI: "com.secret.", Match: proto.MatchPrefix}}},
		{Name: "full", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Register: true}}},
		{Name: "op", Permissions: []Permission{{URI: "com.", Match: proto.MatchPrefix, Call: true}}},
	})
	a, b, op := login("a"), login("b"), login("op")
	a.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
	b.register("com.", map[string]any{"match": "prefix", "invoke": "roundrobin"})
	for i := 0; i < 4; i++ {
		req := op.call("com.secret.x", nil, nil, nil)
		inv := b.expect(proto.CodeInvocation)
		b.unavailable(inv.Request, nil, nil)
		if r := op.recv(); r.Type != proto.CodeError || r.Request != req || string(r.URI) != proto.URINoAvailableCallee {
			t.Fatalf("call %d: the caller got %s %s %v, want ERROR %s", i, r.Type, r.URI, argsOf(r), proto.URINoAvailableCallee)
		}
		// A call both may serve moves the rotation on by one, so that the
		// next call reaches the callees in the other order.
		req = op.call("com.open", nil, nil, nil)
		a.e.sync()
		k, inv := invoked(t, []*tc{a, b})
		[]*tc{a, b}[k].yield(inv.Request, nil, nil)
		if r := op.recv(); r.Type != proto.CodeResult || r.Request != req {
			t.Fatalf("call to com.open: %s %s", r.Type, r.URI)
		}
	}
	if m := tryRecv(a); m != nil {
		t.Fatalf("the callee denied com.secret. got %s", m.Type)
	}
}
