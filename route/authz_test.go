package route

import (
	"strconv"
	"strings"
	"testing"

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
