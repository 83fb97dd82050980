package route

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// retainedRealm is a realm "secure" whose users u, v and w (role user,
// password "pw") may do under app. what the test grants, and add
// testaments, and root (role admin) everything.
type retainedRealm struct {
	t    *testing.T
	e    *env
	pw   map[string]*Password // authid -> password hash
	logs *logLines
}

func newRetainedRealm(t *testing.T, shards int) *retainedRealm {
	pw, _ := HashPassword("pw", 1000)
	rr := &retainedRealm{t: t, pw: map[string]*Password{"u": pw, "v": pw, "w": pw, "root": pw}}
	rc := rr.config(Permission{URI: "app.", Match: proto.MatchPrefix, Publish: true, Subscribe: true, Call: true})
	rr.logs = &logLines{}
	rr.e = newEnv(t, shards, func(c *Config) {
		c.Realms = []RealmConfig{rc}
		c.Logger = slog.New(slog.NewTextHandler(rr.logs, nil))
	})
	return rr
}

// config builds the realm with the users left in rr.pw and the given
// permissions for role user.
func (rr *retainedRealm) config(user ...Permission) RealmConfig {
	var us []*User
	for id, h := range rr.pw {
		role := "user"
		if id == "root" {
			role = "admin"
		}
		us = append(us, &User{AuthID: id, Roles: []string{role}, Password: h})
	}
	users, err := NewUsers(us)
	if err != nil {
		rr.t.Fatal(err)
	}
	sr := &secureRealm{t: rr.t}
	user = append(user, Permission{URI: "wamp.session.", Match: proto.MatchPrefix, Call: true}) // testaments
	return RealmConfig{Name: "secure", Users: users, Authorizer: sr.rbac(user), Authenticators: []Authenticator{&TicketAuth{Users: users}}}
}

func (rr *retainedRealm) reload(user ...Permission) {
	if err := rr.e.r.Reload([]RealmConfig{rr.config(user...)}); err != nil {
		rr.t.Fatal(err)
	}
	rr.e.sync()
}

// retainedTopics subscribes c to prefix "app." with get_retained and
// returns the topics of the retained events it is handed.
func retainedTopics(c *tc) []string {
	c.t.Helper()
	sid := c.subscribe("app.", map[string]any{"match": "prefix", "get_retained": true})
	c.e.sync()
	var topics []string
	for len(c.peer.in) > 0 {
		m := c.expect(proto.CodeEvent)
		if m.ID != sid || !m.Opt.Bool(proto.KeyRetained, false) {
			c.t.Fatalf("EVENT for %d retained=%v, want a retained event for %d", m.ID, m.Opt.Bool(proto.KeyRetained, false), sid)
		}
		topics = append(topics, m.Opt.String(proto.KeyTopic))
	}
	sort.Strings(topics)
	return topics
}

// A retained event speaks for its publisher to every later get_retained:
// after a reload took its role's publish grant for the topic away, or
// removed its user, or changed the credential it logged in with (what
// ends a session of that identity), it was still handed out. The reload
// now drops it, whether the publisher is still connected or left long
// ago, and whether it was a PUBLISH or a testament; what is still allowed
// stays.
func TestReloadDropsRetainedEvents(t *testing.T) {
	rr := newRetainedRealm(t, 2)
	retain := map[string]any{"retain": true, "acknowledge": true}
	u := loginTicket(rr.e, "u", revocationRoles)
	for _, topic := range []string{"app.open.u", "app.locked.u"} {
		u.publish(topic, retain, []any{topic}, nil)
		u.expect(proto.CodePublished)
	}
	u.callMeta("wamp.session.add_testament", []any{"app.locked.will", []any{"gone"}}, map[string]any{"publish_options": map[string]any{"retain": true}})
	u.goodbye() // the testament is published and retained
	v := loginTicket(rr.e, "v", revocationRoles)
	v.publish("app.open.v", retain, []any{"v"}, nil)
	v.expect(proto.CodePublished)
	w := loginTicket(rr.e, "w", revocationRoles)
	w.publish("app.open.w", retain, []any{"w"}, nil)
	w.expect(proto.CodePublished)
	w.goodbye()
	root := loginTicket(rr.e, "root", revocationRoles)
	before := []string{"app.locked.u", "app.locked.will", "app.open.u", "app.open.v", "app.open.w"}
	if got := retainedTopics(root); !equalStrings(got, before) {
		t.Fatalf("retained before the reload %v, want %v", got, before)
	}

	// The same configuration again drops nothing.
	rr.reload(Permission{URI: "app.", Match: proto.MatchPrefix, Publish: true, Subscribe: true, Call: true})
	if n := rr.logs.count("retained"); n != 0 {
		t.Fatalf("a reload that changed nothing logged %d lines about retained events", n)
	}
	// Role user may no longer publish under app.locked.; v is removed; w's
	// password is changed (the same password, a new hash).
	delete(rr.pw, "v")
	rr.pw["w"], _ = HashPassword("pw", 1000)
	rr.reload(Permission{URI: "app.", Match: proto.MatchPrefix, Publish: true, Subscribe: true, Call: true},
		Permission{URI: "app.locked.", Match: proto.MatchPrefix, Subscribe: true})
	v.expect(proto.CodeGoodbye)
	late := loginTicket(rr.e, "root", revocationRoles)
	if got, want := retainedTopics(late), []string{"app.open.u"}; !equalStrings(got, want) {
		t.Fatalf("retained after the reload %v, want %v", got, want)
	}
	// The dropped events left their publishers' shares (retshare.go): u
	// had three (its testament's included), v and w one each.
	if got := shareEvents(rr.e.r.Realm("secure")); len(got) != 1 || got[`realm "secure" authid u`] != 1 {
		t.Fatalf("publishers' shares after the reload %v, want u's one event", got)
	}
	// Counted, and logged once (with the count), not once per event.
	if n := rr.logs.count("dropped retained events after reload"); n != 1 {
		t.Fatalf("%d log lines about dropped retained events, want 1", n)
	}
	if n := rr.logs.count("count=4"); n != 1 {
		t.Fatalf("no log line says count=4")
	}
	rm := rr.e.r.Realm("secure")
	rm.mu.RLock()
	n, bytes := len(rm.retained), rm.retainedBytes
	rm.mu.RUnlock()
	if n != 1 || bytes <= 0 || bytes > 1024 {
		t.Fatalf("%d retained topics, %d bytes accounted, want 1 and its size", n, bytes)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Revoking an access token (RevokeCredentials) drops the retained events
// published with it, as it drops the testaments of its sessions: those of
// a session it ends and of one that already left. Another token's stay.
func TestRevokedCredentialDropsRetained(t *testing.T) {
	logs := &logLines{}
	e, _ := credEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	retain := map[string]any{"retain": true, "acknowledge": true}
	a1 := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA1.loginA")
	a1.publish("com.app.a1", retain, []any{1}, nil)
	a1.expect(proto.CodePublished)
	a1.goodbye()
	a2 := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA2.loginA")
	a2.publish("com.app.a2", retain, []any{2}, nil)
	a2.expect(proto.CodePublished)
	b := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiB.loginB")
	b.publish("com.app.b", retain, []any{3}, nil)
	b.expect(proto.CodePublished)

	e.r.RevokeCredentials([]string{"loginA"}, "the login was revoked")
	expectKilled(t, a2, "login was revoked")
	e.sync()
	waitRetainedRevoked(t, e, 2) // off the loops
	sid := b.subscribe("com.app.", map[string]any{"match": "prefix", "get_retained": true})
	m := b.expect(proto.CodeEvent)
	if m.ID != sid || m.Opt.String(proto.KeyTopic) != "com.app.b" {
		t.Fatalf("retained EVENT %s on %s, want com.app.b only", describe(m), m.Opt.String(proto.KeyTopic))
	}
	b.quiet()
	for i := 0; i < 1000 && logs.count("credential they were published with was revoked") == 0; i++ {
		time.Sleep(10 * time.Millisecond) // logged after the count, off the loops
	}
	if n := logs.count("credential they were published with was revoked"); n != 1 || logs.count("count=2") != 1 {
		t.Fatalf("%d log lines about dropped retained events (want 1, saying count=2)", n)
	}

	// A revocation finds what a credential retained however its events
	// were replaced: b's on com.app.b goes to c, b retains com.app.y.
	b.goodbye()
	b = e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiB.loginB")
	c := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiC.loginC")
	for _, p := range []struct {
		c     *tc
		topic string
	}{{b, "com.app.b"}, {c, "com.app.b"}, {b, "com.app.y"}, {b, "com.app.y"}} {
		p.c.publish(p.topic, retain, []any{4}, nil)
		p.c.expect(proto.CodePublished)
	}
	e.r.RevokeCredentials([]string{"jtiB"}, "the access token was revoked")
	expectKilled(t, b, "revoked")
	e.sync()
	waitRetainedRevoked(t, e, 3) // b's com.app.y (its com.app.b went to c)
	c.subscribe("com.app.", map[string]any{"match": "prefix", "get_retained": true})
	if m := c.expect(proto.CodeEvent); m.Opt.String(proto.KeyTopic) != "com.app.b" {
		t.Fatalf("retained EVENT on %s, want com.app.b (c's) only", m.Opt.String(proto.KeyTopic))
	}
	c.quiet()
}

// On a mesh every node that received a retained event keeps a copy, and
// get_retained takes the newest copy of any node: the publisher's node
// dropping its own was not enough. It asks the others to drop theirs.
func TestReloadDropsRetainedCopiesAcrossMesh(t *testing.T) {
	pw, _ := HashPassword("pw", 1000)
	rr := &retainedRealm{t: t, pw: map[string]*Password{"u": pw, "root": pw}}
	all := Permission{URI: "app.", Match: proto.MatchPrefix, Publish: true, Subscribe: true}
	rc := rr.config(all)
	logs := &logLines{}
	mm, envs := newMemMesh(t, 2, 1, func(c *Config) {
		c.Realms = []RealmConfig{rc}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	watcher := loginTicket(envs[1], "root", revocationRoles) // node B's interest: B keeps copies
	watcher.subscribe("app.", map[string]any{"match": "prefix"})
	u := loginTicket(envs[0], "u", revocationRoles)
	for _, topic := range []string{"app.locked.t", "app.open.t"} {
		u.publish(topic, map[string]any{"retain": true, "acknowledge": true}, []any{topic}, nil)
		u.expect(proto.CodePublished)
	}
	mm.sync()
	watcher.expect(proto.CodeEvent)
	watcher.expect(proto.CodeEvent)
	u.goodbye()
	rmB := envs[1].r.Realm("secure")
	rmB.mu.RLock()
	copies := len(rmB.retained)
	rmB.mu.RUnlock()
	if copies != 2 {
		t.Fatalf("node B keeps %d copies, want 2", copies)
	}

	// Only the publisher's node is reloaded (the others may be later, or
	// never: their copies do not say who published them).
	if err := envs[0].r.Reload([]RealmConfig{rr.config(all, Permission{URI: "app.locked.", Match: proto.MatchPrefix, Subscribe: true})}); err != nil {
		t.Fatal(err)
	}
	mm.sync()
	for i, e := range envs {
		late := loginTicket(e, "root", revocationRoles)
		sid := late.subscribe("app.", map[string]any{"match": "prefix", "get_retained": true})
		mm.sync()
		m := late.expect(proto.CodeEvent)
		if m.ID != sid || m.Opt.String(proto.KeyTopic) != "app.open.t" {
			t.Fatalf("node %d: retained EVENT on %s, want app.open.t only", i, m.Opt.String(proto.KeyTopic))
		}
		late.quiet()
	}
	if logs.count("dropped retained events after reload") != 1 || logs.count("dropped copies of retained events") != 1 {
		t.Fatalf("log lines %v: want one drop on each node", logs.lines)
	}
}

// waitRetainedRevoked waits until n retained events in all were dropped
// for their publishers (Stats.RetainedRevoked): a revocation walks them
// off the loops.
func waitRetainedRevoked(t *testing.T, e *env, n uint64) {
	t.Helper()
	for i := 0; e.r.Stats().RetainedRevoked < n; i++ {
		if i == 1000 {
			t.Fatalf("%d retained events dropped, want %d", e.r.Stats().RetainedRevoked, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A revocation walks the realm's retained events off the event loops, as
// a reload does: the walk copies every one of them (3-11 ms at 65,536
// retained topics, measured), and a client that can get tokens, retain
// with them and revoke them could make the loop that ended its sessions
// last spend that at each revocation, its other sessions waiting. Held
// here in the walk (testHookRevokeRetained), every loop still answers.
// Without the fix the walk ran on that loop: its session's PUBLISH got
// no PUBLISHED while the walk was held.
func TestRevokedCredentialRetainedWalkOffLoop(t *testing.T) {
	e, _ := credEnv(t)
	release := make(chan struct{})
	walking := make(chan struct{}, 1)
	testHookRevokeRetained = func() {
		walking <- struct{}{}
		<-release
	}
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { free(); testHookRevokeRetained = nil })

	retain := map[string]any{"retain": true, "acknowledge": true}
	a := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA.loginA")
	a.publish("com.app.a", retain, []any{1}, nil)
	a.expect(proto.CodePublished)
	a.goodbye()
	// A session on every loop.
	var others []*tc
	for range e.execs {
		c := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiB.loginB")
		others = append(others, c)
	}
	e.r.RevokeCredentials([]string{"loginA"}, "the login was revoked")
	select {
	case <-walking:
	case <-time.After(10 * time.Second):
		t.Fatal("the revocation did not walk the retained events")
	}
	for _, c := range others {
		req := c.nextReq()
		c.sendAsync(&proto.Message{Type: proto.CodePublish, Request: req, Dict: c.opts(map[string]any{"acknowledge": true}), URI: []byte("com.app.x")})
		if m := c.expect(proto.CodePublished); m.Request != req {
			t.Fatalf("PUBLISHED %s, want request %d", describe(m), req)
		}
	}
	free()
	// The event goes once the walk ends.
	rm := e.r.Realm("secure")
	for i := 0; rm.retainedWith([]string{"loginA"}); i++ {
		if i == 1000 {
			t.Fatal("the revoked credential's retained event was not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.r.Stats(); st.RetainedRevoked != 1 {
		t.Fatalf("%d retained events counted revoked, want 1", st.RetainedRevoked)
	}
}

// Revocations that come while a revocation's walk of the retained events
// runs wait for it and are walked together, in one walk: before, each
// had a goroutine of its own walking at once, each copying every
// retained event of the realm (24 bytes each, 1.5 MB at 65,536 topics,
// and 3-11 ms of a core), so that a burst of revocations of tokens that
// retained (a client revoking its own) ran that many walks at once
// beside the event loops, with no bound. Held here in the first walk
// (testHookRevokeRetained), two more revocations made two more walks at
// once.
func TestRevokedCredentialRetainedWalksOneAtATime(t *testing.T) {
	e, v := credEnv(t)
	release := make(chan struct{})
	walking := make(chan struct{}, 16)
	var walks atomic.Int32
	testHookRevokeRetained = func() {
		walks.Add(1)
		walking <- struct{}{}
		<-release
	}
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { free(); testHookRevokeRetained = nil })

	retain := map[string]any{"retain": true, "acknowledge": true}
	for _, x := range []string{"A", "B", "C"} {
		c := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jti" + x + ".login" + x)
		c.publish("com.app."+x, retain, []any{1}, nil)
		c.expect(proto.CodePublished)
		c.goodbye()
	}
	e.r.RevokeCredentials([]string{"loginA"}, "the login was revoked")
	select {
	case <-walking:
	case <-time.After(10 * time.Second):
		t.Fatal("the revocation did not walk the retained events")
	}
	e.r.RevokeCredentials([]string{"loginB"}, "the login was revoked")
	v.revoke("loginC")
	e.r.RecheckCredentials([]string{"loginC"}) // its Check fails: revoked
	e.sync()
	select {
	case <-walking:
		time.Sleep(100 * time.Millisecond) // a third, if it comes
		t.Fatalf("%d walks of the retained events at once, want 1", walks.Load())
	case <-time.After(300 * time.Millisecond):
	}
	free()
	waitRetainedRevoked(t, e, 3)
	if n := walks.Load(); n != 2 {
		t.Fatalf("%d walks, want 2 (the first, then the two revocations that waited for it together)", n)
	}
	for _, x := range []string{"A", "B", "C"} {
		if e.r.Realm("secure").retainedWith([]string{"login" + x}) {
			t.Fatalf("login%s's retained event not dropped", x)
		}
	}
}
