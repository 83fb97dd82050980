package route

import (
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// revocationRoles are the roles of a client that announces both
// revocation features of the Advanced Profile.
var revocationRoles = map[string]any{
	"callee":     map[string]any{"features": map[string]any{"registration_revocation": true, "pattern_based_registration": true, "shared_registration": true}},
	"caller":     map[string]any{"features": map[string]any{}},
	"publisher":  map[string]any{"features": map[string]any{}},
	"subscriber": map[string]any{"features": map[string]any{"subscription_revocation": true, "pattern_based_subscription": true}},
}

// loginTicket joins realm "secure" of e as authid (password "pw") with the
// given client roles.
func loginTicket(e *env, authid string, roles map[string]any) *tc {
	c := e.connect(proto.JSON)
	c.hello("secure", roles, map[string]any{"authmethods": []any{"ticket"}, "authid": authid})
	c.expect(proto.CodeChallenge)
	c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("pw"), Dict: c.opts(nil)})
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

// revocationOf reads a router-initiated UNSUBSCRIBED or UNREGISTERED: the
// id under key ("subscription", "registration") and the reason.
func revocationOf(t *testing.T, m *proto.Message, key string) (uint64, string) {
	t.Helper()
	if m.Request != 0 || !m.HasDict {
		t.Fatalf("%v for request %d (details %v): not a revocation", m.Type, m.Request, m.HasDict)
	}
	d, _ := proto.DecodeValue(m.Dict)
	dm, _ := d.(map[string]any)
	var id uint64
	switch v := dm[key].(type) {
	case int64:
		id = uint64(v)
	case uint64:
		id = v
	}
	reason, _ := dm["reason"].(string)
	return id, reason
}

// A subscription the subscriber's role may no longer make after a reload
// is revoked, as 43a078f revokes registrations: its events were already
// withheld, but it stayed in the tables (listed and counted by the meta
// API, a place within the session's bound). Exact, prefix and wildcard
// subscriptions are judged as their SUBSCRIBE was. A subscriber that
// announced subscription_revocation gets UNSUBSCRIBED [0, {subscription,
// reason}]; another is not told; both keep their session and what is
// still allowed; the meta events are those of an UNSUBSCRIBE.
func TestReloadRevokesSubscriptions(t *testing.T) {
	sr := newSecureRealmWith(t, func(c *Config) { c.MaxSubscriptions = 4 },
		Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Publish: true})
	c := loginTicket(sr.e, "u", revocationRoles)
	keep := c.subscribe("app.open.t", nil)
	exact := c.subscribe("app.locked.t", nil)
	pre := c.subscribe("app.locked.", map[string]any{"match": "prefix"})
	wild := c.subscribe("app.locked..z", map[string]any{"match": "wildcard"})
	plain := sr.login("u") // announces no subscription_revocation
	if id := plain.subscribe("app.locked.t", nil); id != exact {
		t.Fatalf("subscription %d, want the shared %d", id, exact)
	}
	root := sr.login("root") // may go on subscribing
	root.subscribe("app.locked.t", nil)
	mon := sr.login("root")
	onUnsub := mon.subscribe("wamp.subscription.on_unsubscribe", nil)
	onDelete := mon.subscribe("wamp.subscription.on_delete", nil)

	sr.regrant(Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Publish: true},
		Permission{URI: "app.locked.", Match: proto.MatchPrefix, Publish: true})
	got := map[uint64]string{}
	for i := 0; i < 3; i++ {
		id, reason := revocationOf(t, c.expect(proto.CodeUnsubscribed), "subscription")
		got[id] = reason
	}
	want := map[uint64]string{exact: proto.URINotAuthorized, pre: proto.URINotAuthorized, wild: proto.URINotAuthorized}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("revocations %v, want %v", got, want)
	}
	c.quiet()
	plain.quiet()
	root.quiet()

	// The meta events of four unsubscriptions, two of them the last.
	type ev struct{ topic, session, sub uint64 }
	var evs, wantEvs []ev
	for i := 0; i < 6; i++ {
		m := mon.expect(proto.CodeEvent)
		a := argsOf(m)
		if len(a) != 2 {
			t.Fatalf("meta event args %v", a)
		}
		evs = append(evs, ev{m.ID, uint64(a[0].(int64)), uint64(a[1].(int64))})
	}
	mon.quiet()
	for _, s := range []uint64{exact, pre, wild} {
		wantEvs = append(wantEvs, ev{onUnsub, c.id, s})
	}
	wantEvs = append(wantEvs, ev{onUnsub, plain.id, exact}, ev{onDelete, c.id, pre}, ev{onDelete, c.id, wild})
	less := func(l []ev) func(i, j int) bool {
		return func(i, j int) bool {
			if l[i].topic != l[j].topic {
				return l[i].topic < l[j].topic
			}
			if l[i].session != l[j].session {
				return l[i].session < l[j].session
			}
			return l[i].sub < l[j].sub
		}
	}
	sort.Slice(evs, less(evs))
	sort.Slice(wantEvs, less(wantEvs))
	if !reflect.DeepEqual(evs, wantEvs) {
		t.Fatalf("meta events %v, want %v", evs, wantEvs)
	}

	// The tables no longer hold them.
	if n := mon.callMeta("wamp.subscription.count_subscribers", []any{exact}, nil); n != int64(1) {
		t.Fatalf("count_subscribers %v, want 1 (root)", n)
	}
	if got := ids(mon.callMeta("wamp.subscription.list_subscribers", []any{exact}, nil)); !reflect.DeepEqual(got, []uint64{root.id}) {
		t.Fatalf("list_subscribers %v, want [%d]", got, root.id)
	}
	for _, p := range []struct{ uri, match string }{{"app.locked.", "prefix"}, {"app.locked..z", "wildcard"}} {
		if v := mon.callMeta("wamp.subscription.lookup", []any{p.uri, map[string]any{"match": p.match}}, nil); v != nil {
			t.Fatalf("lookup %s %s: %v, want none", p.match, p.uri, v)
		}
	}
	// Their places within the session's bound are free again: it holds one
	// of four.
	for _, topic := range []string{"app.open.a", "app.open.b", "app.open.c"} {
		c.subscribe(topic, nil)
	}
	// What is still allowed still delivers.
	root.publish("app.open.t", nil, []any{"still"}, nil)
	if m := c.expect(proto.CodeEvent); m.ID != keep {
		t.Fatalf("EVENT for subscription %d, want %d", m.ID, keep)
	}
}

// A subscription a reload revokes withdraws its interest from the mesh as
// an UNSUBSCRIBE does: the node no longer asks for the topic's events.
func TestReloadRevokedSubscriptionLeavesMesh(t *testing.T) {
	pw, _ := HashPassword("pw", 1000)
	users, err := NewUsers([]*User{{AuthID: "u", Roles: []string{"user"}, Password: pw}, {AuthID: "root", Roles: []string{"admin"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	sr := &secureRealm{t: t, users: users}
	grant := func(user ...Permission) RealmConfig {
		return RealmConfig{Name: "secure", Users: users, Authorizer: sr.rbac(user), Authenticators: []Authenticator{&TicketAuth{Users: users}}}
	}
	all := Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Publish: true}
	mm, envs := newMemMesh(t, 2, 1, func(c *Config) { c.Realms = []RealmConfig{grant(all)} })
	a := loginTicket(envs[0], "u", revocationRoles)
	sid := a.subscribe("app.locked.t", nil)
	wid := a.subscribe("app.locked..z", map[string]any{"match": "wildcard"})
	a.subscribe("app.open.t", nil)
	mm.sync()
	nodeA := mm.nodes[0]
	if !nodeA.interested("secure", []byte("app.locked.t")) || !nodeA.interested("secure", []byte("app.locked.x.z")) {
		t.Fatal("node A shows no interest in its subscriptions")
	}
	if err := envs[0].r.Reload([]RealmConfig{grant(all, Permission{URI: "app.locked.", Match: proto.MatchPrefix, Publish: true})}); err != nil {
		t.Fatal(err)
	}
	mm.sync()
	got := map[uint64]bool{}
	for i := 0; i < 2; i++ {
		id, _ := revocationOf(t, a.expect(proto.CodeUnsubscribed), "subscription")
		got[id] = true
	}
	if !got[sid] || !got[wid] {
		t.Fatalf("revoked %v, want %d and %d", got, sid, wid)
	}
	for _, topic := range []string{"app.locked.t", "app.locked.x.z"} {
		if nodeA.interested("secure", []byte(topic)) {
			t.Fatalf("node A still asks the mesh for %s", topic)
		}
	}
	if !nodeA.interested("secure", []byte("app.open.t")) {
		t.Fatal("node A withdrew the interest of a subscription still allowed")
	}
	// A publisher on node B reaches the subscription still allowed only.
	b := loginTicket(envs[1], "root", revocationRoles)
	b.publish("app.open.t", nil, []any{1}, nil)
	b.publish("app.locked.t", nil, []any{2}, nil)
	mm.sync()
	if m := a.expect(proto.CodeEvent); argsOf(m)[0] != int64(1) {
		t.Fatalf("EVENT %v", argsOf(m))
	}
	a.quiet()
}

// The router announces what it does (WAMP §Feature Announcement): a
// reload revokes subscriptions and registrations.
func TestWelcomeAnnouncesRevocation(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.connect(proto.JSON)
	c.hello("realm1", allFeatures, nil)
	d := welcomeDetails(t, c.expect(proto.CodeWelcome))
	roles := d["roles"].(map[string]any)
	for role, f := range map[string]string{"broker": "subscription_revocation", "dealer": "registration_revocation"} {
		if roles[role].(map[string]any)["features"].(map[string]any)[f] != true {
			t.Errorf("%s does not announce %s", role, f)
		}
	}
}

// logLines collects a router's log lines; safe for concurrent use.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.Split(strings.TrimRight(string(b), "\n"), "\n")...)
	return len(b), nil
}

// count returns the number of lines containing s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// A session cannot make a reload write a log line per registration or
// subscription it held: one line per session and kind, with the count.
// (Registrations were logged one by one: 200 revoked, 200 lines.)
func TestReloadRevocationLogsOncePerSession(t *testing.T) {
	logs := &logLines{}
	sr := newSecureRealmWith(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) },
		Permission{URI: "app.", Match: proto.MatchPrefix, Subscribe: true, Register: true})
	c := sr.login("u")
	for i := 0; i < 200; i++ {
		c.register("app.p"+strconv.Itoa(i), nil)
		c.subscribe("app.t"+strconv.Itoa(i), nil)
	}
	sr.regrant()
	c.quiet()
	if n := logs.count("after reload"); n != 2 {
		t.Errorf("%d log lines about the reload, want 2", n)
	}
	if n := logs.count("revoking registrations after reload"); n != 1 {
		t.Errorf("%d log lines for the revoked registrations, want 1", n)
	}
	if n := logs.count("revoking subscriptions after reload"); n != 1 {
		t.Errorf("%d log lines for the revoked subscriptions, want 1", n)
	}
	if n := logs.count("count=200"); n != 2 {
		t.Errorf("%d log lines say count=200, want 2", n)
	}
	if v := sr.login("root").callMeta("wamp.subscription.list", nil, nil); v != nil {
		if l := v.(map[string]any)["exact"].([]any); len(l) != 0 {
			t.Errorf("%d subscriptions left", len(l))
		}
	}
}
