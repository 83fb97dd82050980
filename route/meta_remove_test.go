package route

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.remove_callee and wamp.subscription.remove_subscriber
// (WAMP Advanced Profile, Registration and Subscription Meta API, as
// Crossbar.io implements them).

// revocableFeatures are allFeatures with registration_revocation and
// subscription_revocation announced.
var revocableFeatures = func() map[string]any {
	out := map[string]any{}
	for role, v := range allFeatures {
		f := map[string]any{}
		for k, x := range v.(map[string]any)["features"].(map[string]any) {
			f[k] = x
		}
		switch role {
		case "callee":
			f["registration_revocation"] = true
		case "subscriber":
			f["subscription_revocation"] = true
		}
		out[role] = map[string]any{"features": f}
	}
	return out
}()

// joinRealmOn joins realm on shard i with the given client roles.
func (e *env) joinRealmOn(i int, ser proto.Serializer, realm string, roles map[string]any) *tc {
	c := e.connectOn(i, ser)
	c.hello(realm, roles, nil)
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

func dictOf(t *testing.T, m *proto.Message) map[string]any {
	t.Helper()
	if !m.Dict.Present() {
		return nil
	}
	v, err := proto.DecodeValue(m.Dict)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := v.(map[string]any)
	return d
}

// expectRevoked waits for a router-initiated UNREGISTERED or UNSUBSCRIBED
// (request 0) naming id under key, with the reason (absent when "").
func (c *tc) expectRevoked(code proto.Code, key string, id uint64, reason string) {
	c.t.Helper()
	m := c.expect(code)
	d := dictOf(c.t, m)
	if m.Request != 0 || d[key] != int64(id) {
		c.t.Fatalf("%v: request %d details %v, want request 0 and %s %d", code, m.Request, d, key, id)
	}
	if r, ok := d["reason"]; reason == "" && ok || reason != "" && r != reason {
		c.t.Fatalf("%v: details %v, want reason %q", code, d, reason)
	}
}

// expectMetaEvent waits for a meta event on topic subscription sid with args.
func (c *tc) expectMetaEvent(sid uint64, want ...any) {
	c.t.Helper()
	m := c.expect(proto.CodeEvent)
	if m.ID != sid {
		c.t.Fatalf("event on subscription %d, want %d: %s", m.ID, sid, describe(m))
	}
	if got := argsOf(m); !reflect.DeepEqual(got, want) {
		c.t.Fatalf("event args %v, want %v", got, want)
	}
}

func TestRemoveCallee(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	onUnreg := mon.subscribe("wamp.registration.on_unregister", nil)
	onDelete := mon.subscribe("wamp.registration.on_delete", nil)
	callee := e.joinRealmOn(1, proto.MsgPack, "realm1", revocableFeatures)
	rid := callee.register("com.moved", nil)
	admin := e.joinRealmOn(0, proto.CBOR, "realm1", allFeatures)

	if r := admin.callMeta("wamp.registration.remove_callee", []any{rid, callee.id, "com.example.moved"}, nil); r != nil {
		t.Fatalf("remove_callee returned %v, want no result", r)
	}
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "com.example.moved")
	mon.expectMetaEvent(onUnreg, int64(callee.id), int64(rid))
	mon.expectMetaEvent(onDelete, int64(callee.id), int64(rid))
	req := admin.call("com.moved", nil, nil, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	req = admin.call("wamp.registration.get", nil, []any{rid}, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchRegistration)
	// Removed, as after UNREGISTER: a second removal finds nothing, the
	// callee's own UNREGISTER too, and it may register again.
	req = admin.call("wamp.registration.remove_callee", nil, []any{rid, callee.id}, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchRegistration)
	ureq := callee.nextReq()
	callee.send(&proto.Message{Type: proto.CodeUnregister, Request: ureq, ID: rid})
	callee.expectError(proto.CodeUnregister, ureq, proto.URINoSuchRegistration)
	rid = callee.register("com.moved", nil)
	mon.quiet()

	// The reason as keyword argument; none at all: Details without one.
	admin.callMeta("wamp.registration.remove_callee", []any{rid, callee.id}, map[string]any{"reason": "com.example.kw"})
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "com.example.kw")
	rid = callee.register("com.moved", nil)
	admin.callMeta("wamp.registration.remove_callee", []any{rid, callee.id, nil}, nil)
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "")

	// A callee that did not announce registration_revocation is not told
	// (WAMP: the Dealer MUST NOT send it UNREGISTERED), but is removed all
	// the same.
	plain := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	prid := plain.register("com.plain", nil)
	admin.callMeta("wamp.registration.remove_callee", []any{prid, plain.id, "com.example.gone"}, nil)
	plain.quiet()
	req = admin.call("com.plain", nil, nil, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)

	// A session may remove its own registration (on its own loop: done,
	// then answered).
	own := callee.register("com.own", nil)
	req = callee.call("wamp.registration.remove_callee", nil, []any{own, callee.id}, nil)
	callee.expectRevoked(proto.CodeUnregistered, "registration", own, "")
	if m := callee.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("result %s", describe(m))
	}
	callee.quiet()
	admin.quiet()
}

// Removing one callee of a shared registration leaves the others serving
// it: the registration stays (on_unregister, no on_delete).
func TestRemoveCalleeSharedRegistration(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	onUnreg := mon.subscribe("wamp.registration.on_unregister", nil)
	mon.subscribe("wamp.registration.on_delete", nil)
	a := e.joinRealmOn(0, proto.JSON, "realm1", revocableFeatures)
	b := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	rid := a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	if id := b.register("com.shared", map[string]any{"invoke": "roundrobin"}); id != rid {
		t.Fatalf("shared registration ids %d and %d", rid, id)
	}
	admin := e.joinRealmOn(1, proto.MsgPack, "realm1", allFeatures)
	admin.callMeta("wamp.registration.remove_callee", []any{rid, a.id, "wamp.close.maintenance"}, nil)
	a.expectRevoked(proto.CodeUnregistered, "registration", rid, "wamp.close.maintenance")
	mon.expectMetaEvent(onUnreg, int64(a.id), int64(rid))
	mon.quiet() // no on_delete
	if got := ids(admin.callMeta("wamp.registration.list_callees", []any{rid}, nil)); !reflect.DeepEqual(got, []uint64{b.id}) {
		t.Fatalf("list_callees %v, want [%d]", got, b.id)
	}
	for i := 0; i < 4; i++ {
		req := admin.call("com.shared", nil, []any{i}, nil)
		inv := b.expect(proto.CodeInvocation)
		b.yield(inv.Request, nil, []any{i})
		if m := admin.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("result %s", describe(m))
		}
	}
	a.quiet()
}

// A call already delivered to the callee removed goes on as after an
// UNREGISTER: its result reaches the caller. Later calls do not reach it.
func TestRemoveCalleeCallInFlight(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	other := e.joinRealmOn(1, proto.CBOR, "realm1", revocableFeatures)
	rid := callee.register("com.slow", map[string]any{"invoke": "first"})
	other.register("com.slow", map[string]any{"invoke": "first"})
	caller := e.joinRealmOn(0, proto.MsgPack, "realm1", allFeatures)
	req := caller.call("com.slow", nil, []any{"pending"}, nil)
	inv := callee.expect(proto.CodeInvocation)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	admin.callMeta("wamp.registration.remove_callee", []any{rid, callee.id, "com.example.drain"}, nil)
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "com.example.drain")
	caller.quiet() // the call is not failed
	callee.yield(inv.Request, nil, []any{"done"})
	if m := caller.expect(proto.CodeResult); m.Request != req || !reflect.DeepEqual(argsOf(m), []any{"done"}) {
		t.Fatalf("the pending call's result: %s", describe(m))
	}
	req = caller.call("com.slow", nil, nil, nil)
	inv = other.expect(proto.CodeInvocation)
	other.yield(inv.Request, nil, nil)
	if m := caller.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("result %s", describe(m))
	}
	callee.quiet()
}

func TestRemoveCalleeErrors(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	rid := callee.register("com.x", nil)
	idle := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	expect := func(args []any, kwargs map[string]any, uri string) {
		t.Helper()
		req := admin.call("wamp.registration.remove_callee", nil, args, kwargs)
		admin.expectError(proto.CodeCall, req, uri)
	}
	for _, args := range [][]any{nil, {}, {rid}, {"x", callee.id}, {rid, "x"}, {rid, -1}, {rid, 1.5}} {
		expect(args, nil, proto.URIInvalidArgument)
	}
	expect([]any{rid, callee.id, 7}, nil, proto.URIInvalidArgument)
	expect([]any{rid, callee.id}, map[string]any{"reason": []any{}}, proto.URIInvalidArgument)
	expect([]any{rid, callee.id, "not a uri"}, nil, proto.URIInvalidURI)
	expect([]any{rid, callee.id, ""}, nil, proto.URIInvalidURI)
	// A reason is bounded as a kill's: a URI, at most proto.MaxURILen bytes.
	expect([]any{rid, callee.id, strings.Repeat("a", proto.MaxURILen+1)}, nil, proto.URIInvalidURI)
	req := admin.call("wamp.registration.remove_callee", nil, []any{rid, callee.id, strings.Repeat("a", 70<<10)}, nil)
	admin.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
	// No such session (checked first, as Crossbar.io does), registration,
	// or callee of it.
	expect([]any{rid, 12345}, nil, proto.URINoSuchSession)
	expect([]any{424242, 12345}, nil, proto.URINoSuchSession)
	expect([]any{424242, callee.id}, nil, proto.URINoSuchRegistration)
	expect([]any{rid, idle.id}, nil, proto.URINoSuchRegistration)
	expect([]any{rid, admin.id}, nil, proto.URINoSuchRegistration)
	callee.quiet()

	// The longest reason there is reaches the callee.
	long := strings.Repeat("a.", proto.MaxURILen/2-1) + "ab"
	admin.callMeta("wamp.registration.remove_callee", []any{rid, callee.id, long}, nil)
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, long)
}

// Another realm's sessions, registrations and subscriptions are out of
// reach: a session of realm2 is no session of realm1, even under a
// registration id that realm1 has too.
func TestRemoveOtherRealm(t *testing.T) {
	e := newEnv(t, 2, nil)
	victim := e.joinRealmOn(1, proto.JSON, "realm2", revocableFeatures)
	vrid := victim.register("com.same", nil)
	vsid := victim.subscribe("com.same", nil)
	local := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	rid := local.register("com.same", nil)
	sid := local.subscribe("com.same", nil)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	for _, c := range []struct {
		proc string
		args []any
	}{
		{"wamp.registration.remove_callee", []any{vrid, victim.id}},
		{"wamp.registration.remove_callee", []any{rid, victim.id}},
		{"wamp.subscription.remove_subscriber", []any{vsid, victim.id}},
		{"wamp.subscription.remove_subscriber", []any{sid, victim.id}},
	} {
		req := admin.call(c.proc, nil, c.args, nil)
		admin.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	}
	victim.quiet()
	local.quiet()
	peer := e.joinRealmOn(0, proto.JSON, "realm2", allFeatures)
	req := peer.call("com.same", nil, nil, nil)
	inv := victim.expect(proto.CodeInvocation)
	victim.yield(inv.Request, nil, nil)
	if m := peer.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("realm2 call %s", describe(m))
	}
	peer.publish("com.same", nil, []any{1}, nil)
	if ev := victim.expect(proto.CodeEvent); ev.ID != vsid {
		t.Fatalf("realm2 event %s", describe(ev))
	}
}

// A session removing the same callee again and again, without waiting:
// it is removed once, with one UNREGISTERED and one pair of meta events;
// every other attempt is answered (a success while the removal has not yet
// run on the callee's loop, then no_such_registration).
func TestRemoveCalleeRepeated(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	onUnreg := mon.subscribe("wamp.registration.on_unregister", nil)
	onDelete := mon.subscribe("wamp.registration.on_delete", nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	rid := callee.register("com.x", nil)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	const n = 200
	reqs := map[uint64]bool{}
	for i := 0; i < n; i++ {
		reqs[admin.call("wamp.registration.remove_callee", nil, []any{rid, callee.id}, nil)] = true
	}
	for i := 0; i < n; i++ {
		m := admin.recv()
		if !reqs[m.Request] {
			t.Fatalf("answer to an unknown request: %v %s", m.Type, describe(m))
		}
		delete(reqs, m.Request)
		if m.Type != proto.CodeResult && (m.Type != proto.CodeError || string(m.URI) != proto.URINoSuchRegistration) {
			t.Fatalf("answer %v %s %s", m.Type, m.URI, describe(m))
		}
	}
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "")
	callee.quiet()
	mon.expectMetaEvent(onUnreg, int64(callee.id), int64(rid))
	mon.expectMetaEvent(onDelete, int64(callee.id), int64(rid))
	mon.quiet()
	// The session is fine and may register again.
	callee.register("com.x", nil)
}

func TestRemoveSubscriber(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	onUnsub := mon.subscribe("wamp.subscription.on_unsubscribe", nil)
	onDelete := mon.subscribe("wamp.subscription.on_delete", nil)
	s1 := e.joinRealmOn(1, proto.MsgPack, "realm1", revocableFeatures)
	s2 := e.joinRealmOn(0, proto.CBOR, "realm1", allFeatures) // no subscription_revocation
	sid := s1.subscribe("com.news", nil)
	if id := s2.subscribe("com.news", nil); id != sid {
		t.Fatalf("subscription ids %d and %d", sid, id)
	}
	admin := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)

	if r := admin.callMeta("wamp.subscription.remove_subscriber", []any{sid, s1.id, "com.example.bye"}, nil); r != nil {
		t.Fatalf("remove_subscriber returned %v", r)
	}
	s1.expectRevoked(proto.CodeUnsubscribed, "subscription", sid, "com.example.bye")
	mon.expectMetaEvent(onUnsub, int64(s1.id), int64(sid))
	mon.quiet() // s2 keeps the subscription: no on_delete
	admin.publish("com.news", nil, []any{"after"}, nil)
	if ev := s2.expect(proto.CodeEvent); !reflect.DeepEqual(argsOf(ev), []any{"after"}) {
		t.Fatalf("s2 event %s", describe(ev))
	}
	s1.quiet()
	if got := ids(admin.callMeta("wamp.subscription.list_subscribers", []any{sid}, nil)); !reflect.DeepEqual(got, []uint64{s2.id}) {
		t.Fatalf("list_subscribers %v", got)
	}
	req := admin.call("wamp.subscription.remove_subscriber", nil, []any{sid, s1.id}, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchSubscription)

	// s2 did not announce subscription_revocation: not told, removed.
	admin.callMeta("wamp.subscription.remove_subscriber", []any{sid, s2.id}, map[string]any{"reason": "com.example.bye"})
	mon.expectMetaEvent(onUnsub, int64(s2.id), int64(sid))
	mon.expectMetaEvent(onDelete, int64(s2.id), int64(sid))
	s2.quiet()
	admin.publish("com.news", nil, []any{"nobody"}, nil)
	s1.quiet()
	s2.quiet()
	req = admin.call("wamp.subscription.get", nil, []any{sid}, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchSubscription)
	// Subscribing again works.
	s1.subscribe("com.news", nil)
}

func TestRemoveSubscriberErrors(t *testing.T) {
	e := newEnv(t, 1, nil)
	sub := e.joinRealmOn(0, proto.JSON, "realm1", revocableFeatures)
	sid := sub.subscribe("com.t", nil)
	other := e.joinRealmOn(0, proto.JSON, "realm1", revocableFeatures)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	expect := func(args []any, kwargs map[string]any, uri string) {
		t.Helper()
		req := admin.call("wamp.subscription.remove_subscriber", nil, args, kwargs)
		admin.expectError(proto.CodeCall, req, uri)
	}
	for _, args := range [][]any{nil, {sid}, {"x", sub.id}, {sid, map[string]any{}}} {
		expect(args, nil, proto.URIInvalidArgument)
	}
	expect([]any{sid, sub.id, false}, nil, proto.URIInvalidArgument)
	expect([]any{sid, sub.id, "a..b"}, nil, proto.URIInvalidURI)
	expect([]any{sid, 999}, nil, proto.URINoSuchSession)
	expect([]any{777, sub.id}, nil, proto.URINoSuchSubscription)
	expect([]any{sid, other.id}, nil, proto.URINoSuchSubscription)
	sub.quiet()
	other.quiet()
}

// The remove procedures are ordinary meta procedures for the realm's
// RBAC: a role not granted them gets not_authorized, and nothing happens.
func TestRemoveAuthorization(t *testing.T) {
	z, err := NewRBAC([]Role{
		{Name: "anonymous", Permissions: []Permission{
			{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true},
			{URI: "wamp.registration.remove_callee", Match: proto.MatchExact},
			{URI: "wamp.subscription.remove_subscriber", Match: proto.MatchExact},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Anonymous: true, AnonymousRole: "anonymous", Authorizer: z}}
	})
	victim := e.joinRealmOn(1, proto.JSON, "secure", revocableFeatures)
	rid := victim.register("com.svc", nil)
	sid := victim.subscribe("com.feed", nil)
	attacker := e.joinRealmOn(0, proto.JSON, "secure", allFeatures)
	for _, c := range []struct {
		proc string
		args []any
	}{
		{"wamp.registration.remove_callee", []any{rid, victim.id}},
		{"wamp.subscription.remove_subscriber", []any{sid, victim.id}},
	} {
		req := attacker.call(c.proc, nil, c.args, nil)
		attacker.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	}
	victim.quiet()
	req := attacker.call("com.svc", nil, nil, nil)
	inv := victim.expect(proto.CodeInvocation)
	victim.yield(inv.Request, nil, nil)
	if m := attacker.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("result %s", describe(m))
	}
	// Other meta procedures stay callable.
	if got := ids(attacker.callMeta("wamp.registration.list_callees", []any{rid}, nil)); !reflect.DeepEqual(got, []uint64{victim.id}) {
		t.Fatalf("list_callees %v", got)
	}
}

// On a mesh, the procedures reach a session on another node the way
// wamp.session.kill does (a gather): that node removes it and answers,
// its error included (not a callee or subscriber there); a session on no
// node is no_such_session. A session on the caller's node needs no other
// node: removed even while the mesh cannot be asked.
func TestMeshRemoveCalleeAndSubscriber(t *testing.T) {
	mm, es := newMemMesh(t, 3, 2, nil)
	mon := es[0].joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	onUnreg := mon.subscribe("wamp.registration.on_unregister", nil)
	onUnsub := mon.subscribe("wamp.subscription.on_unsubscribe", nil)
	callee := es[1].joinRealmOn(1, proto.MsgPack, "realm1", revocableFeatures) // on B
	other := es[2].joinRealmOn(0, proto.JSON, "realm1", revocableFeatures)     // on C
	rid := callee.register("com.svc", map[string]any{"invoke": "roundrobin"})
	if id := other.register("com.svc", map[string]any{"invoke": "roundrobin"}); id != rid {
		t.Fatalf("registration ids differ across nodes: %d, %d", rid, id)
	}
	sid := callee.subscribe("com.feed", nil)
	idle := es[2].joinRealmOn(1, proto.JSON, "realm1", revocableFeatures) // on C, neither
	mm.sync()
	admin := es[0].joinRealmOn(1, proto.CBOR, "realm1", allFeatures) // on A
	call := func(proc string, args ...any) *proto.Message {
		t.Helper()
		req := admin.call(proc, nil, args, nil)
		mm.sync()
		m := admin.recv()
		if m.Request != req {
			t.Fatalf("%s: answer to request %d, want %d", proc, m.Request, req)
		}
		return m
	}
	expectErr := func(m *proto.Message, uri string) {
		t.Helper()
		if m.Type != proto.CodeError || string(m.URI) != uri {
			t.Fatalf("got %v %s %s, want ERROR %s", m.Type, m.URI, describe(m), uri)
		}
	}
	// Errors from the session's node, and for a session on no node.
	expectErr(call("wamp.registration.remove_callee", rid, idle.id), proto.URINoSuchRegistration)
	expectErr(call("wamp.subscription.remove_subscriber", sid, idle.id), proto.URINoSuchSubscription)
	expectErr(call("wamp.registration.remove_callee", uint64(424242), callee.id), proto.URINoSuchRegistration)
	expectErr(call("wamp.registration.remove_callee", rid, uint64(12345)), proto.URINoSuchSession)
	expectErr(call("wamp.registration.remove_callee", rid, callee.id, "not a uri"), proto.URIInvalidURI)
	callee.quiet()
	other.quiet()
	idle.quiet()

	// The callee on B, removed from A; C's callee keeps serving.
	if m := call("wamp.registration.remove_callee", rid, callee.id, "com.example.moved"); m.Type != proto.CodeResult {
		t.Fatalf("remove_callee of a callee on B: %s", describe(m))
	}
	callee.expectRevoked(proto.CodeUnregistered, "registration", rid, "com.example.moved")
	mon.expectMetaEvent(onUnreg, int64(callee.id), int64(rid)) // B's meta event, published across
	mm.sync()
	for i := 0; i < 3; i++ {
		req := admin.call("com.svc", nil, []any{i}, nil)
		mm.sync()
		inv := other.expect(proto.CodeInvocation)
		other.yield(inv.Request, nil, []any{i})
		mm.sync()
		if m := admin.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("result %s", describe(m))
		}
	}
	callee.quiet()
	expectErr(call("wamp.registration.remove_callee", rid, callee.id), proto.URINoSuchRegistration)

	// The subscriber on B, removed from A: B's interest in the topic goes.
	if m := call("wamp.subscription.remove_subscriber", sid, callee.id); m.Type != proto.CodeResult {
		t.Fatalf("remove_subscriber of a subscriber on B: %s", describe(m))
	}
	callee.expectRevoked(proto.CodeUnsubscribed, "subscription", sid, "")
	mon.expectMetaEvent(onUnsub, int64(callee.id), int64(sid))
	mm.sync()
	if mm.nodes[1].interested("realm1", []byte("com.feed")) {
		t.Fatal("node B still subscribed to com.feed in the mesh")
	}
	admin.publish("com.feed", nil, []any{1}, nil)
	mm.sync()
	callee.quiet()

	// Without the mesh: a session elsewhere cannot be reached (unavailable,
	// as for kill); one on this node is removed all the same.
	busy := errors.New("edge: busy")
	mm.nodes[0].gatherErr.Store(&busy)
	expectErr(call("wamp.registration.remove_callee", rid, other.id), proto.URIUnavailable)
	other.quiet()
	local := es[0].joinRealmOn(0, proto.JSON, "realm1", revocableFeatures)
	lrid := local.register("com.local", nil)
	if m := call("wamp.registration.remove_callee", lrid, local.id); m.Type != proto.CodeResult {
		t.Fatalf("remove_callee of a local callee with the mesh busy: %s", describe(m))
	}
	local.expectRevoked(proto.CodeUnregistered, "registration", lrid, "")
	expectErr(call("wamp.registration.remove_callee", lrid, local.id), proto.URINoSuchRegistration)
	mm.nodes[0].gatherErr.Store(nil)
}
