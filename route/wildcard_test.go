package route

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The default bounds of wildcard patterns (Config.MaxWildcard*), which
// these tests use so that they run against the defaults.
const (
	wildPerSession = 1024
	wildPerRealm   = 4096
)

// requestMany sends one REGISTER or SUBSCRIBE (code) per URI, a batch at a
// time (the test peer's inbox holds 4,096 messages), and returns the
// answers in request order (on a mesh a single registration is answered
// once its claim is).
func (c *tc) requestMany(code proto.Code, uris []string, o map[string]any) []*proto.Message {
	c.t.Helper()
	var out []*proto.Message
	for len(uris) > 0 {
		batch := uris[:min(len(uris), 1024)]
		uris = uris[len(batch):]
		first := c.req + 1
		for _, u := range batch {
			c.send(&proto.Message{Type: code, Request: c.nextReq(), Dict: c.opts(o), URI: []byte(u)})
		}
		got := make([]*proto.Message, len(batch))
		for range batch {
			m := c.recv()
			i := int(m.Request - first)
			if m.Request < first || i >= len(got) || got[i] != nil {
				c.t.Fatalf("answer %v %s, want one for requests %d..%d", m.Type, describe(m), first, c.req)
			}
			got[i] = m
		}
		out = append(out, got...)
	}
	return out
}

// mustAll checks that every answer is of type want.
func mustAll(t *testing.T, ms []*proto.Message, want proto.Code) {
	t.Helper()
	for _, m := range ms {
		if m.Type != want {
			t.Fatalf("got %v %s, want %v", m.Type, describe(m), want)
		}
	}
}

// refusedWildcard checks that m refuses a wildcard pattern with
// wamp.error.unavailable and a message naming the bound.
func refusedWildcard(t *testing.T, m *proto.Message, reqType proto.Code, scope string) {
	t.Helper()
	if m.Type != proto.CodeError || m.ReqType != reqType || string(m.URI) != proto.URIUnavailable {
		t.Fatalf("got %v %s, want ERROR %s for %v", m.Type, describe(m), proto.URIUnavailable, reqType)
	}
	if a := argsOf(m); len(a) != 1 || !strings.Contains(a[0].(string), "too many wildcard") || !strings.Contains(a[0].(string), scope) {
		t.Fatalf("ERROR message %v, want one about too many wildcard patterns %s", a, scope)
	}
}

func patterns(prefix string, from, n int) []string {
	var l []string
	for i := from; i < from+n; i++ {
		l = append(l, prefix+strconv.Itoa(i)+"..z")
	}
	return l
}

var wildcardOpt = map[string]any{"match": "wildcard"}

// Each wildcard pattern costs a CALL or PUBLISH to a new URI a step when
// it matches all of the URI but its last component (4.1-4.4 ms a CALL at
// 16,384 patterns). Their number is bounded: 1,024 wildcard subscriptions
// per session and 4,096 per realm by default. Joining an existing pattern
// adds none to the realm's count; unsubscribing, leaving and a revocation
// give their count back. The refusal is logged once per session.
func TestWildcardSubscriptionBounds(t *testing.T) {
	logs := &logLines{}
	e := newEnv(t, 2, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	var subs [4]*tc
	for i := range subs {
		subs[i] = e.join(proto.JSON)
		mustAll(t, subs[i].requestMany(proto.CodeSubscribe, patterns("w"+strconv.Itoa(i)+".p", 0, wildPerSession), wildcardOpt), proto.CodeSubscribed)
	}
	// The session's bound: a further pattern, even one that exists.
	for _, uri := range []string{"w0.more..z", "w1.p0..z"} {
		refusedWildcard(t, subs[0].requestMany(proto.CodeSubscribe, []string{uri}, wildcardOpt)[0], proto.CodeSubscribe, "for this session")
	}
	subs[0].subscribe("w0.exact", nil) // other match policies are not bounded by it
	subs[0].subscribe("w0.", map[string]any{"match": "prefix"})

	// The realm's bound: a new pattern is refused to another session,
	// however often it asks (one log line); joining a pattern is not.
	late := e.join(proto.JSON)
	for i := 0; i < 50; i++ {
		refusedWildcard(t, late.requestMany(proto.CodeSubscribe, []string{"late.p..z"}, wildcardOpt)[0], proto.CodeSubscribe, "in realm")
	}
	late.subscribe("w1.p7..z", wildcardOpt)
	if n := logs.count("refusing wildcard subscriptions"); n != 2 {
		t.Fatalf("%d log lines for the refusals of two sessions, want 2", n)
	}

	// Unsubscribing gives a pattern back; so does a session's end.
	unsubscribe := func(c *tc, uri string) {
		t.Helper()
		id := c.callMeta("wamp.subscription.lookup", []any{uri, map[string]any{"match": "wildcard"}}, nil)
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: uint64(id.(int64))})
		c.expect(proto.CodeUnsubscribed)
	}
	unsubscribe(subs[2], "w2.p5..z") // the realm: 4,095
	late.subscribe("late.p..z", wildcardOpt)
	refusedWildcard(t, late.requestMany(proto.CodeSubscribe, []string{"late.q..z"}, wildcardOpt)[0], proto.CodeSubscribe, "in realm")
	subs[1].goodbye() // 1,023 of its patterns go (late holds w1.p7): 3,073
	e.sync()
	mustAll(t, late.requestMany(proto.CodeSubscribe, patterns("late.q", 0, wildPerSession-2), wildcardOpt), proto.CodeSubscribed)
	// late holds 1,024 (w1.p7 joined among them): its own bound, logged
	// no more.
	refusedWildcard(t, late.requestMany(proto.CodeSubscribe, []string{"late.r..z"}, wildcardOpt)[0], proto.CodeSubscribe, "for this session")
	unsubscribe(late, "w1.p7..z") // its last subscriber: 4,094
	mustAll(t, late.requestMany(proto.CodeSubscribe, []string{"late.s..z"}, wildcardOpt), proto.CodeSubscribed)
	fresh := e.join(proto.JSON)
	mustAll(t, fresh.requestMany(proto.CodeSubscribe, []string{"fresh.a..z"}, wildcardOpt), proto.CodeSubscribed)
	refusedWildcard(t, fresh.requestMany(proto.CodeSubscribe, []string{"fresh.b..z"}, wildcardOpt)[0], proto.CodeSubscribe, "in realm")
	if n := logs.count("refusing wildcard subscriptions"); n != 3 {
		t.Fatalf("%d log lines for the refusals of three sessions, want 3", n)
	}
}

// The same bounds for wildcard registrations. A callee joining a shared
// (non-single) wildcard registration adds no pattern to the realm's
// count (it counts toward its own bound); unregistering and leaving give
// counts back.
func TestWildcardRegistrationBounds(t *testing.T) {
	e := newEnv(t, 2, nil)
	shared := map[string]any{"match": "wildcard", "invoke": "roundrobin"}
	var callees [4]*tc
	for i := range callees {
		callees[i] = e.join(proto.JSON)
		o := wildcardOpt
		if i == 0 {
			o = shared
		}
		mustAll(t, callees[i].requestMany(proto.CodeRegister, patterns("r"+strconv.Itoa(i)+".p", 0, wildPerSession), o), proto.CodeRegistered)
	}
	refusedWildcard(t, callees[0].requestMany(proto.CodeRegister, []string{"r0.more..z"}, shared)[0], proto.CodeRegister, "for this session")
	callees[0].register("r0.exact", nil)

	late := e.join(proto.JSON)
	refusedWildcard(t, late.requestMany(proto.CodeRegister, []string{"late.p..z"}, wildcardOpt)[0], proto.CodeRegister, "in realm")
	// Joining shared registrations adds no pattern: as many as its own
	// bound allows.
	mustAll(t, late.requestMany(proto.CodeRegister, patterns("r0.p", 0, wildPerSession), shared), proto.CodeRegistered)
	refusedWildcard(t, late.requestMany(proto.CodeRegister, []string{"r0.more..z"}, shared)[0], proto.CodeRegister, "for this session")
	// A single registration cannot be joined: procedure_already_exists.
	other := e.join(proto.JSON)
	m := other.requestMany(proto.CodeRegister, []string{"r1.p0..z"}, wildcardOpt)[0]
	if m.Type != proto.CodeError || string(m.URI) != proto.URIProcedureAlreadyExists {
		t.Fatalf("got %v %s, want procedure_already_exists", m.Type, describe(m))
	}

	// The first callee leaves: late still holds every shared pattern, so
	// the realm's count stays.
	callees[0].goodbye()
	e.sync()
	refusedWildcard(t, other.requestMany(proto.CodeRegister, []string{"other.p..z"}, wildcardOpt)[0], proto.CodeRegister, "in realm")
	// Unregistering gives a pattern back.
	id := callees[2].callMeta("wamp.registration.lookup", []any{"r2.p9..z", map[string]any{"match": "wildcard"}}, nil)
	req := callees[2].nextReq()
	callees[2].send(&proto.Message{Type: proto.CodeUnregister, Request: req, ID: uint64(id.(int64))})
	callees[2].expect(proto.CodeUnregistered)
	other.register("other.p..z", wildcardOpt)
	refusedWildcard(t, other.requestMany(proto.CodeRegister, []string{"other.q..z"}, wildcardOpt)[0], proto.CodeRegister, "in realm")
	// And a session's end gives back all of its patterns.
	callees[3].drop()
	e.sync()
	mustAll(t, other.requestMany(proto.CodeRegister, patterns("other.q", 0, wildPerSession-1), wildcardOpt), proto.CodeRegistered)
}

// A subscription or registration a reload revokes gives its count back
// too: a session at its bound subscribes and registers again.
func TestRevokedWildcardsReleaseBounds(t *testing.T) {
	sr := newSecureRealm(t, Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Register: true})
	c := loginTicket(sr.e, "u", revocationRoles)
	mustAll(t, c.requestMany(proto.CodeSubscribe, patterns("app.locked.s", 0, wildPerSession), wildcardOpt), proto.CodeSubscribed)
	mustAll(t, c.requestMany(proto.CodeRegister, patterns("app.locked.r", 0, wildPerSession), wildcardOpt), proto.CodeRegistered)
	refusedWildcard(t, c.requestMany(proto.CodeSubscribe, []string{"app.open.s..z"}, wildcardOpt)[0], proto.CodeSubscribe, "for this session")
	refusedWildcard(t, c.requestMany(proto.CodeRegister, []string{"app.open.r..z"}, wildcardOpt)[0], proto.CodeRegister, "for this session")
	sr.regrant(Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Register: true},
		Permission{URI: "app.locked.", Match: proto.MatchPrefix})
	for i := 0; i < 2*wildPerSession; i++ {
		m := c.recv()
		if m.Type != proto.CodeUnsubscribed && m.Type != proto.CodeUnregistered {
			t.Fatalf("got %v %s, want revocations", m.Type, describe(m))
		}
	}
	mustAll(t, c.requestMany(proto.CodeSubscribe, patterns("app.open.s", 0, wildPerSession), wildcardOpt), proto.CodeSubscribed)
	mustAll(t, c.requestMany(proto.CodeRegister, patterns("app.open.r", 0, wildPerSession), wildcardOpt), proto.CodeRegistered)
}

// On a mesh the other nodes' registrations are entries of this node's
// table too (the directory), bounded by their own nodes' counts. A local
// callee that joins a pattern only other nodes had counts it here: the
// pattern is now this node's too, and stays when the other node's
// callees go. (Uncounted, a session could take over patterns that
// sessions elsewhere register and drop, beyond any bound.)
func TestWildcardRegistrationBoundsOnMesh(t *testing.T) {
	mm, envs := newMemMesh(t, 2, 2, nil)
	shared := map[string]any{"match": "wildcard", "invoke": "roundrobin"}
	b := envs[1].join(proto.JSON)
	mustAll(t, b.requestMany(proto.CodeRegister, patterns("m.p", 0, wildPerSession), shared), proto.CodeRegistered)
	mm.sync()
	// Node B's patterns do not count toward node A's bound. (Shared
	// registrations: a single one waits for its mesh claim, and a session
	// may have only 64 waiting.)
	for i := 0; i < 3; i++ {
		a := envs[0].join(proto.JSON)
		mustAll(t, a.requestMany(proto.CodeRegister, patterns("a"+strconv.Itoa(i)+".p", 0, wildPerSession), shared), proto.CodeRegistered)
	}
	taker := envs[0].join(proto.JSON)
	mustAll(t, taker.requestMany(proto.CodeRegister, patterns("m.p", 0, wildPerSession), shared), proto.CodeRegistered)
	mm.sync()
	late := envs[0].join(proto.JSON)
	refusedWildcard(t, late.requestMany(proto.CodeRegister, []string{"late.p..z"}, wildcardOpt)[0], proto.CodeRegister, "in realm")
	b.goodbye()
	mm.sync()
	refusedWildcard(t, late.requestMany(proto.CodeRegister, []string{"late.p..z"}, wildcardOpt)[0], proto.CodeRegister, "in realm")
	taker.drop()
	mm.sync()
	mustAll(t, late.requestMany(proto.CodeRegister, []string{"late.p..z"}, wildcardOpt), proto.CodeRegistered)
}
