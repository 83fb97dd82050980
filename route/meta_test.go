package route

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// callMeta calls a meta procedure and returns the RESULT's first argument.
func (c *tc) callMeta(proc string, args []any, kwargs map[string]any) any {
	c.t.Helper()
	req := c.call(proc, nil, args, kwargs)
	m := c.recv()
	if m.Type != proto.CodeResult || m.Request != req {
		c.t.Fatalf("%s: got %v %s", proc, m.Type, describe(m))
	}
	a := argsOf(m)
	if len(a) == 0 {
		return nil
	}
	return a[0]
}

func ids(v any) []uint64 {
	var out []uint64
	for _, x := range v.([]any) {
		out = append(out, uint64(x.(int64)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestSessionMetaProcedures(t *testing.T) {
	e := newEnv(t, 2, nil)
	a, b := e.join(proto.JSON), e.join(proto.MsgPack)
	if n := a.callMeta("wamp.session.count", nil, nil); n != int64(2) {
		t.Fatalf("count %v", n)
	}
	if n := a.callMeta("wamp.session.count", []any{[]any{"admin"}}, nil); n != int64(0) {
		t.Fatalf("filtered count %v", n)
	}
	want := []uint64{a.id, b.id}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if got := ids(a.callMeta("wamp.session.list", nil, nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("list %v, want %v", got, want)
	}
	d := b.callMeta("wamp.session.get", []any{a.id}, nil).(map[string]any)
	if d["session"] != int64(a.id) || d["authrole"] != "anonymous" || d["authmethod"] != "anonymous" {
		t.Fatalf("get %v", d)
	}
	req := b.call("wamp.session.get", nil, []any{12345}, nil)
	b.expectError(proto.CodeCall, req, proto.URINoSuchSession)
}

func TestSessionMetaEvents(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.join(proto.CBOR)
	mon.subscribe("wamp.session.on_join", nil)
	mon.subscribe("wamp.session.on_leave", nil)
	c := e.join(proto.JSON)
	ev := mon.expect(proto.CodeEvent)
	d := argsOf(ev)[0].(map[string]any)
	if d["session"] != int64(c.id) || d["authrole"] != "anonymous" {
		t.Fatalf("on_join %v", d)
	}
	c.drop()
	ev = mon.expect(proto.CodeEvent)
	if a := argsOf(ev); len(a) != 3 || a[0] != int64(c.id) || a[2] != "anonymous" {
		t.Fatalf("on_leave %v", a)
	}
}

func TestSessionKill(t *testing.T) {
	e := newEnv(t, 2, nil)
	admin := e.join(proto.JSON)
	victim := e.join(proto.MsgPack)
	victim.register("com.v", nil)
	if r := admin.callMeta("wamp.session.kill", []any{victim.id}, map[string]any{"reason": "com.app.bye", "message": "maintenance"}); r != nil {
		t.Fatalf("kill returned %v", r)
	}
	m := victim.expect(proto.CodeGoodbye)
	if string(m.URI) != "com.app.bye" || m.Opt.String(proto.KeyMessage) != "maintenance" {
		t.Fatalf("GOODBYE %s %q", m.URI, m.Opt.String(proto.KeyMessage))
	}
	victim.send(&proto.Message{Type: proto.CodeGoodbye, Dict: victim.opts(nil), URI: []byte(proto.CloseGoodbyeAndOut)})
	e.sync()
	if !victim.peer.closed.Load() {
		t.Fatal("victim transport still open")
	}
	req := admin.call("com.v", nil, nil, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	// Killing oneself is refused.
	req = admin.call("wamp.session.kill", nil, []any{admin.id}, nil)
	admin.expectError(proto.CodeCall, req, proto.URINoSuchSession)
	// Default reason is wamp.close.normal.
	v2 := e.join(proto.JSON)
	admin.callMeta("wamp.session.kill", []any{v2.id}, nil)
	if m := v2.expect(proto.CodeGoodbye); string(m.URI) != proto.CloseNormal {
		t.Fatalf("default reason %s", m.URI)
	}
	req = admin.call("wamp.session.kill", nil, []any{v2.id}, map[string]any{"reason": "not a uri"})
	admin.expectError(proto.CodeCall, req, proto.URIInvalidURI)
}

func TestKillByAuthIDRoleAll(t *testing.T) {
	e := newEnv(t, 2, nil)
	mk := func(authid string) *tc { return e.joinAs(proto.JSON, authid) }
	admin := mk("admin")
	d1, d2, other := mk("dev"), mk("dev"), mk("other")
	if n, _ := admin.callMeta("wamp.session.kill_by_authid", []any{"dev"}, nil).([]any); len(n) != 2 { // the sessions killed
		t.Fatalf("kill_by_authid %v", n)
	}
	d1.expect(proto.CodeGoodbye)
	d2.expect(proto.CodeGoodbye)
	other.quiet()
	admin2 := mk("admin")
	if n := admin.callMeta("wamp.session.kill_by_authrole", []any{"user"}, nil); n != int64(2) { // other, admin2 (not the caller, not already gone)
		t.Fatalf("kill_by_authrole %v", n)
	}
	other.expect(proto.CodeGoodbye)
	admin2.expect(proto.CodeGoodbye)
	x := mk("x")
	if n := admin.callMeta("wamp.session.kill_all", nil, nil); n != int64(1) {
		t.Fatalf("kill_all %v", n)
	}
	x.expect(proto.CodeGoodbye)
	admin.quiet()
}

func TestRegistrationMeta(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.join(proto.JSON)
	for _, topic := range []string{"wamp.registration.on_create", "wamp.registration.on_register", "wamp.registration.on_unregister", "wamp.registration.on_delete"} {
		mon.subscribe(topic, nil)
	}
	a, b := e.join(proto.MsgPack), e.join(proto.JSON)
	rid := a.register("com.shared", map[string]any{"invoke": "roundrobin"})
	ev := mon.expect(proto.CodeEvent) // on_create
	args := argsOf(ev)
	det := args[1].(map[string]any)
	if args[0] != int64(a.id) || det["id"] != int64(rid) || det["uri"] != "com.shared" || det["match"] != "exact" || det["invoke"] != "roundrobin" || det["created"] == "" {
		t.Fatalf("on_create %v", args)
	}
	if a := argsOf(mon.expect(proto.CodeEvent)); a[0] != int64(a[0].(int64)) || a[1] != int64(rid) {
		t.Fatalf("on_register %v", a)
	}
	b.register("com.shared", map[string]any{"invoke": "roundrobin"})
	mon.expect(proto.CodeEvent) // on_register for b
	pid := b.register("com.pre", map[string]any{"match": "prefix"})
	mon.expect(proto.CodeEvent)
	mon.expect(proto.CodeEvent)

	l := mon.callMeta("wamp.registration.list", nil, nil).(map[string]any)
	if !reflect.DeepEqual(ids(l["exact"]), []uint64{rid}) || !reflect.DeepEqual(ids(l["prefix"]), []uint64{pid}) || len(l["wildcard"].([]any)) != 0 {
		t.Fatalf("list %v", l)
	}
	if v := mon.callMeta("wamp.registration.lookup", []any{"com.shared"}, nil); v != int64(rid) {
		t.Fatalf("lookup %v", v)
	}
	if v := mon.callMeta("wamp.registration.lookup", []any{"com.pre", map[string]any{"match": "prefix"}}, nil); v != int64(pid) {
		t.Fatalf("lookup prefix %v", v)
	}
	if v := mon.callMeta("wamp.registration.lookup", []any{"com.none"}, nil); v != nil {
		t.Fatalf("lookup of nothing returned %v, want null", v)
	}
	if v := mon.callMeta("wamp.registration.match", []any{"com.pre.x"}, nil); v != int64(pid) {
		t.Fatalf("match %v", v)
	}
	if v := mon.callMeta("wamp.registration.match", []any{"org.none"}, nil); v != nil {
		t.Fatalf("match of nothing %v", v)
	}
	if g := mon.callMeta("wamp.registration.get", []any{rid}, nil).(map[string]any); g["uri"] != "com.shared" {
		t.Fatalf("get %v", g)
	}
	want := []uint64{a.id, b.id}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if got := ids(mon.callMeta("wamp.registration.list_callees", []any{rid}, nil)); !reflect.DeepEqual(got, want) {
		t.Fatalf("list_callees %v", got)
	}
	if n := mon.callMeta("wamp.registration.count_callees", []any{rid}, nil); n != int64(2) {
		t.Fatalf("count_callees %v", n)
	}
	req := mon.call("wamp.registration.get", nil, []any{1}, nil)
	mon.expectError(proto.CodeCall, req, proto.URINoSuchRegistration)

	a.drop()
	if ev := argsOf(mon.expect(proto.CodeEvent)); ev[0] != int64(a.id) || ev[1] != int64(rid) {
		t.Fatalf("on_unregister %v", ev)
	}
	b.drop()
	got := map[string]bool{}
	for i := 0; i < 4; i++ { // on_unregister ×2 (com.shared, com.pre), on_delete ×2
		ev := mon.expect(proto.CodeEvent)
		got[string(rune('0'+i))] = true
		_ = ev
	}
	if n := mon.callMeta("wamp.registration.list", nil, nil).(map[string]any); len(n["exact"].([]any)) != 0 {
		t.Fatalf("registrations remain: %v", n)
	}
}

func TestSubscriptionMeta(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.join(proto.JSON)
	for _, topic := range []string{"wamp.subscription.on_create", "wamp.subscription.on_subscribe", "wamp.subscription.on_unsubscribe", "wamp.subscription.on_delete"} {
		req := mon.nextReq()
		mon.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: mon.opts(nil), URI: []byte(topic)})
	}
	// The monitor sees its own later meta subscriptions being created.
	e.sync()
	for len(mon.peer.in) > 0 {
		mon.recv()
	}
	a := e.join(proto.CBOR)
	sid := a.subscribe("com.t", nil)
	wid := a.subscribe("com..x", map[string]any{"match": "wildcard"})
	for i := 0; i < 4; i++ {
		mon.expect(proto.CodeEvent)
	}
	if v := mon.callMeta("wamp.subscription.lookup", []any{"com.t"}, nil); v != int64(sid) {
		t.Fatalf("lookup %v", v)
	}
	if v := mon.callMeta("wamp.subscription.lookup", []any{"com.nothing"}, nil); v != nil {
		t.Fatalf("lookup of nothing %v", v)
	}
	if got := ids(mon.callMeta("wamp.subscription.match", []any{"com.t.x"}, nil)); !reflect.DeepEqual(got, []uint64{wid}) {
		t.Fatalf("match %v", got)
	}
	if v := mon.callMeta("wamp.subscription.match", []any{"org.x"}, nil); v != nil {
		t.Fatalf("match of nothing %v", v)
	}
	if n := mon.callMeta("wamp.subscription.count_subscribers", []any{sid}, nil); n != int64(1) {
		t.Fatalf("count %v", n)
	}
	if got := ids(mon.callMeta("wamp.subscription.list_subscribers", []any{sid}, nil)); !reflect.DeepEqual(got, []uint64{a.id}) {
		t.Fatalf("list_subscribers %v", got)
	}
	if g := mon.callMeta("wamp.subscription.get", []any{wid}, nil).(map[string]any); g["match"] != "wildcard" || g["uri"] != "com..x" {
		t.Fatalf("get %v", g)
	}
	l := mon.callMeta("wamp.subscription.list", nil, nil).(map[string]any)
	if len(l["exact"].([]any)) != 5 { // four meta subscriptions + com.t
		t.Fatalf("list %v", l)
	}
	a.goodbye()
	for i := 0; i < 4; i++ { // unsubscribe + delete for both
		ev := mon.expect(proto.CodeEvent)
		if argsOf(ev)[0] != int64(a.id) {
			t.Fatalf("event args %v", argsOf(ev))
		}
	}
	req := mon.call("wamp.subscription.get", nil, []any{sid}, nil)
	mon.expectError(proto.CodeCall, req, proto.URINoSuchSubscription)
}

func TestTestament(t *testing.T) {
	e := newEnv(t, 2, nil)
	watcher := e.join(proto.MsgPack)
	watcher.subscribe("com.dead", nil)
	c := e.join(proto.JSON)
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{"destroyed"}, map[string]any{"who": "c"}}, nil)
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{"detached"}}, map[string]any{"scope": "detached"})
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{"flushed"}}, nil)
	c.callMeta("wamp.session.flush_testaments", nil, nil) // flushes destroyed scope
	c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{"destroyed"}, map[string]any{"who": "c"}}, nil)
	req := c.call("wamp.session.add_testament", nil, []any{"com.dead"}, map[string]any{"scope": "forever"})
	c.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	c.drop()
	ev := watcher.expect(proto.CodeEvent)
	if a := argsOf(ev); !reflect.DeepEqual(a, []any{"detached"}) {
		t.Fatalf("first testament %v", a)
	}
	ev = watcher.expect(proto.CodeEvent)
	if a := argsOf(ev); !reflect.DeepEqual(a, []any{"destroyed"}) || !reflect.DeepEqual(kwargsOf(ev), map[string]any{"who": "c"}) {
		t.Fatalf("second testament %v %v", a, kwargsOf(ev))
	}
	watcher.quiet()
}

func TestMetaArgumentErrors(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	for _, proc := range []string{"wamp.session.get", "wamp.registration.get", "wamp.subscription.get", "wamp.session.kill", "wamp.registration.lookup"} {
		// As many arguments as proc takes (more are refused first:
		// TestMetaExtraPositionalArgumentsRefused).
		req := c.call(proc, nil, []any{"not-an-id-or-uri", 1, 2}[:metaArity[proc]], nil)
		m := c.recv()
		if proc == "wamp.registration.lookup" {
			if m.Type != proto.CodeError || string(m.URI) != proto.URIInvalidArgument {
				t.Fatalf("%s: %v %s", proc, m.Type, m.URI)
			}
			continue
		}
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIInvalidArgument {
			t.Fatalf("%s: %v %s", proc, m.Type, m.URI)
		}
		if a := argsOf(m); len(a) != 1 || !strings.Contains(a[0].(string), "needs") {
			t.Fatalf("%s message %v", proc, a)
		}
	}
}
