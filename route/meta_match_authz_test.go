package route

import (
	"slices"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// matchGrantRealm returns realm "trusted" (trustAuth: role "user") whose
// role may call the two match procedures, register and subscribe under
// "com" (a prefix), call under "com.open" only, and neither subscribe nor
// call under "com.secret"; under "com.callonly" it may call, but not
// register (nor be invoked).
func matchGrantRealm(t *testing.T) RealmConfig {
	z, err := NewRBAC([]Role{{Name: "user", Permissions: []Permission{
		{URI: "wamp.registration.match", Match: proto.MatchExact, Call: true},
		{URI: "wamp.subscription.match", Match: proto.MatchExact, Call: true},
		{URI: "com", Match: proto.MatchPrefix, Register: true, Subscribe: true},
		{URI: "com.open", Match: proto.MatchPrefix, Register: true, Subscribe: true, Call: true},
		{URI: "com.secret", Match: proto.MatchPrefix, Register: true},
		{URI: "com.callonly", Match: proto.MatchPrefix, Call: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return RealmConfig{Name: "trusted", Authenticators: []Authenticator{trustAuth{}}, Authorizer: z}
}

// README (Meta API): wamp.registration.match "answers null for a URI a
// CALL is refused before any registration is looked up", and a CALL the
// caller's role may not make is refused not_authorized before any
// look-up; likewise wamp.subscription.match names no subscription of a
// topic the caller's role may not subscribe to. Before, both named the
// prefix pattern that matched the URI: a role without any grant under
// "com.secret" learnt which registrations and subscriptions its URIs
// reach (and through get, their patterns and callees).
func TestMatchAnswersNullForURIsTheRoleMayNotUse(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.Realms = []RealmConfig{matchGrantRealm(t)} })
	c := e.joinAs(proto.JSON, "alice")
	rid := c.register("com", map[string]any{"match": "prefix"})
	sid := c.subscribe("com", map[string]any{"match": "prefix"})
	if v := c.callMeta("wamp.registration.match", []any{"com.secret.x"}, nil); v != nil {
		t.Errorf("wamp.registration.match com.secret.x, which the role may not call: %v, want null", v)
	}
	req := c.call("com.secret.x", nil, nil, nil)
	c.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	if v := c.callMeta("wamp.subscription.match", []any{"com.secret.x"}, nil); v != nil {
		t.Errorf("wamp.subscription.match com.secret.x, which the role may not subscribe to: %v, want null", v)
	}
	// URIs the role may use still name them.
	if v := c.callMeta("wamp.registration.match", []any{"com.open.x"}, nil); v != int64(rid) {
		t.Errorf("wamp.registration.match com.open.x: %v, want %d", v, rid)
	}
	if v, ok := c.callMeta("wamp.subscription.match", []any{"com.open.x"}, nil).([]any); !ok || len(v) != 1 || v[0] != int64(sid) {
		t.Errorf("wamp.subscription.match com.open.x: %v, want [%d]", v, sid)
	}
}

// On a mesh, wamp.subscription.match of a topic the caller's role may not
// subscribe to is null too: the other nodes are not asked for theirs.
func TestMeshSubscriptionMatchNullForTopicTheRoleMayNotSubscribe(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.Realms = []RealmConfig{matchGrantRealm(t)} })
	sid := es[1].joinAs(proto.JSON, "bob").subscribe("com", map[string]any{"match": "prefix"})
	mm.sync()
	a := es[0].joinAs(proto.JSON, "alice")
	req := a.call("wamp.subscription.match", nil, []any{"com.secret.x"}, nil)
	mm.sync()
	if m := a.expect(proto.CodeResult); m.Request != req || len(argsOf(m)) != 1 || argsOf(m)[0] != nil {
		t.Errorf("wamp.subscription.match com.secret.x on a mesh: %s, want RESULT [null]", describe(m))
	}
	req = a.call("wamp.subscription.match", nil, []any{"com.open.x"}, nil)
	mm.sync()
	if m := a.expect(proto.CodeResult); m.Request != req || len(argsOf(m)) != 1 || !slices.Equal(argsOf(m)[0].([]any), []any{int64(sid)}) {
		t.Errorf("wamp.subscription.match com.open.x on a mesh: %s, want RESULT [[%d]]", describe(m), sid)
	}
}

// wamp.registration.match answers null for a URI whose every callee of
// the matching pattern registration is refused it (a more specific grant
// without register under the pattern): the CALL fails not_authorized
// ("the callee of the registration matching ... is not authorized for
// it") with no callee invoked. Before, match named the registration.
func TestRegistrationMatchNullWhenNoCalleeMayTakeIt(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.Realms = []RealmConfig{matchGrantRealm(t)} })
	c := e.joinAs(proto.JSON, "alice")
	rid := c.register("com", map[string]any{"match": "prefix"})
	if v := c.callMeta("wamp.registration.match", []any{"com.callonly.x"}, nil); v != nil {
		t.Errorf("wamp.registration.match com.callonly.x, which no callee of %d may take: %v, want null", rid, v)
	}
	req := c.call("com.callonly.x", nil, nil, nil)
	e.sync()
	c.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	if v := c.callMeta("wamp.registration.match", []any{"com.open.x"}, nil); v != int64(rid) {
		t.Errorf("wamp.registration.match com.open.x: %v, want %d", v, rid)
	}
}
