package route

import (
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session ended because its identity is no longer valid (a reload
// removed its user or the credential it logged in with, or its access
// token was revoked) must not act once more as that identity: its
// testaments are dropped, not published. A session killed through the
// meta API, or one that just leaves, still has its testaments published.
func TestRevokedSessionTestamentsDropped(t *testing.T) {
	pw, _ := HashPassword("pw", 1000)
	mk := func(names ...string) *Users {
		var us []*User
		for _, n := range names {
			us = append(us, &User{AuthID: n, Roles: []string{"device"}, Password: pw})
		}
		u, err := NewUsers(us)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	z, err := NewRBAC([]Role{
		{Name: "device", Permissions: []Permission{
			{URI: "com.app.", Match: proto.MatchPrefix, Publish: true, Subscribe: true},
			{URI: "wamp.session.", Match: proto.MatchPrefix, Call: true},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	users := mk("watcher", "gone", "revoked", "killed", "left")
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: users, Authorizer: z, Authenticators: []Authenticator{&TicketAuth{Users: users}}}}
	})
	ids := map[*tc]uint64{}
	login := func(authid string) *tc {
		c := e.connect(proto.JSON)
		w := c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": authid}, func(map[string]any) string { return "pw" })
		welcomeDetails(t, w)
		ids[c] = w.ID
		return c
	}
	watcher := login("watcher")
	watcher.subscribe("com.app.offline", nil)
	withTestament := func(authid string) *tc {
		c := login(authid)
		c.callMeta("wamp.session.add_testament", []any{"com.app.offline", []any{authid}}, nil)
		return c
	}
	gone, killed, left := withTestament("gone"), withTestament("killed"), withTestament("left")

	// A reload removes "gone".
	nc := *e.r.Realm("secure").conf()
	u2 := mk("watcher", "revoked", "killed", "left")
	nc.Users, nc.Authenticators = u2, []Authenticator{&TicketAuth{Users: u2}}
	if err := e.r.Reload([]RealmConfig{nc}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	gone.expect(proto.CodeGoodbye)
	// killed is killed by the watcher through the meta API; left leaves.
	req := watcher.call("wamp.session.kill", nil, []any{ids[killed]}, nil)
	killed.expect(proto.CodeGoodbye)
	left.drop()
	got := map[string]int{}
	for results := 0; results+len(got) < 3; { // the kill's RESULT and two EVENTs, in any order
		switch m := watcher.recv(); {
		case m.Type == proto.CodeResult && m.Request == req:
			results++
		case m.Type == proto.CodeEvent:
			got[argsOf(m)[0].(string)]++
		default:
			t.Fatalf("watcher got %v %s", m.Type, describe(m))
		}
	}
	watcher.quiet()
	if got["killed"] != 1 || got["left"] != 1 || got["gone"] != 0 {
		t.Fatalf("testaments published: %v; want killed and left once, gone never", got)
	}
}

// A testament's publish_options black/white lists cost the router about
// what they cost on the wire while the testament waits for its session to
// leave. One anonymous session's 128 testaments (64 per scope), each with
// an exclude_authid list of 15,900 distinct 3-byte authids (just under the
// 64 KiB bound of a meta call's arguments), are 7,956 KiB of arguments.
// Kept as sets (filterOf at add_testament), counted nowhere, they held
// 112 MiB of heap for the session's life (found by review); kept in their
// encoded form, the sets built only when the testament is published, they
// hold about the bytes received.
func TestTestamentFilterMemory(t *testing.T) {
	e := newEnv(t, 1, nil)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// as many distinct 3-character authids as fit in 64 KiB of MsgPack
	var list []any
	for i := 0; len(list) < 15900; i++ {
		list = append(list, string([]byte{alphabet[i%62], alphabet[(i/62)%62], alphabet[(i/3844)%62]}))
	}
	kw := map[string]any{"publish_options": map[string]any{"exclude_authid": list}}
	if b, _ := proto.EncodeValue(proto.MsgPack, kw); len(b.B) > maxMetaArgs {
		t.Fatalf("kwargs %d bytes", len(b.B))
	}
	c := e.join(proto.MsgPack)
	// Each scope's arguments are encoded once and sent as they are; an
	// eighth of the testaments a session may hold per scope (8 of 64)
	// shows the ratio as well (sets took 14 times the bytes received,
	// whatever their number) at an eighth of the decoding, which made
	// the test take 15-17 s under -race on a loaded machine.
	const perScope = maxTestaments / 8
	topic := raw(t, proto.MsgPack, []any{"com.will"})
	var encoded [2]proto.Raw
	for i, scope := range []string{"detached", "destroyed"} {
		kw["scope"] = scope
		encoded[i] = raw(t, proto.MsgPack, kw)
	}
	var wire int
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, b := range encoded {
		for range perScope {
			wire += len(b.B)
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(nil), URI: []byte("wamp.session.add_testament"), Args: topic, Kwargs: b})
			if m := c.recv(); m.Type != proto.CodeResult || m.Request != req {
				t.Fatalf("add_testament: %s", describe(m))
			}
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("one session's %d testaments: %d KiB of arguments on the wire, %d KiB of heap held", 2*perScope, wire>>10, held>>10)
	if held > 4*int64(wire) {
		t.Fatalf("one session's testaments hold %d KiB of heap for %d KiB of arguments (%.0fx): the black/white lists of their publish_options are counted nowhere", held>>10, wire>>10, float64(held)/float64(wire))
	}
	runtime.KeepAlive(c)

	// The lists, kept encoded, still apply when the testaments are
	// published: "excluded" (an authid of the exclude_authid list) gets
	// none of them, "keep" both, "other" the one not for "keep" only.
	keep, excluded, other := e.joinAs(proto.JSON, "keep"), e.joinAs(proto.JSON, list[len(list)-1].(string)), e.joinAs(proto.JSON, "other")
	for _, w := range []*tc{keep, excluded, other} {
		w.subscribe("com.will", nil)
	}
	dying := e.joinAs(proto.MsgPack, "dying")
	dying.callMeta("wamp.session.add_testament", []any{"com.will", []any{"all but excluded"}}, map[string]any{"publish_options": map[string]any{"exclude_authid": list}})
	dying.callMeta("wamp.session.add_testament", []any{"com.will", []any{"keep only"}}, map[string]any{"publish_options": map[string]any{"eligible": []any{keep.id}}})
	dying.drop()
	e.sync()
	got := map[string][]any{}
	for name, w := range map[string]*tc{"keep": keep, "excluded": excluded, "other": other} {
		for len(w.peer.in) > 0 {
			got[name] = append(got[name], argsOf(w.recv())[0])
		}
	}
	if len(got["keep"]) != 2 || len(got["excluded"]) != 0 || len(got["other"]) != 1 || got["other"][0] != "all but excluded" {
		t.Fatalf("testament events received: %v; want keep both, excluded none, other \"all but excluded\"", got)
	}
}

// A testament is published with its publish options and its session's
// grants as the session's PUBLISH would be (WAMP §Testament: "with the
// specified ... publish options"): a role granted disclose publisher, or a
// testament with disclose_me, discloses the publisher's id, authid and
// authrole; a role without the grant and a testament without disclose_me
// disclose nothing. Before, a testament's event never carried a publisher
// (publishTestaments did not set publication.disclose; found by review):
// the live event of a "staff" session named it, its testament's event
// gave publisher 0 and authrole "". The identity is kept with a retained
// testament (a later get_retained, the session gone, gets it) and crosses
// the mesh. The grant is the one in force when the testament is
// published.
func TestTestamentDisclosesPublisher(t *testing.T) {
	z, err := NewRBAC([]Role{
		{Name: "staff", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Publish: true, Subscribe: true, DisclosePublisher: true}}},
		{Name: "plain", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Publish: true, Subscribe: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	realms := func(c *Config) {
		c.Realms = []RealmConfig{
			{Name: "secure", Anonymous: true, AnonymousRole: "staff", Authorizer: z},
			{Name: "plain", Anonymous: true, AnonymousRole: "plain", Authorizer: z},
		}
	}
	authids := map[*tc]string{}
	join := func(e *env, realm string) *tc {
		c := e.connect(proto.JSON)
		c.hello(realm, allFeatures, nil)
		w := c.expect(proto.CodeWelcome)
		c.id = w.ID
		authids[c], _ = welcomeDetails(t, w)["authid"].(string)
		return c
	}
	// publisher reports who an EVENT discloses.
	publisher := func(m *proto.Message) (uint64, string, string) {
		return m.Opt.Uint(proto.KeyPublisher), m.Opt.String(proto.KeyPublisherAuthID), m.Opt.String(proto.KeyPublisherAuthRole)
	}
	e := newEnv(t, 2, realms)

	// The live event and the testament's (disclose_me) name the publisher.
	sub, pub := join(e, "secure"), join(e, "secure")
	sub.subscribe("com.will", nil)
	pub.publish("com.will", nil, []any{"live"}, nil)
	live := sub.expect(proto.CodeEvent)
	if id, authid, role := publisher(live); id != pub.id || authid != authids[pub] || role != "staff" {
		t.Fatalf("live event publisher %d %q %q, want %d %q staff", id, authid, role, pub.id, authids[pub])
	}
	req := pub.call("wamp.session.add_testament", nil, []any{"com.will", []any{"gone"}}, map[string]any{"publish_options": map[string]any{"disclose_me": true}})
	if m := pub.recv(); m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("add_testament: %s", describe(m))
	}
	pub.goodbye()
	m := sub.expect(proto.CodeEvent)
	if got := m.Opt.Uint(proto.KeyPublisher); got != pub.id {
		t.Fatalf("testament event publisher %d (authrole %q), want %d: the role's disclose publisher grant (and disclose_me) is not applied to its testament", got, m.Opt.String(proto.KeyPublisherAuthRole), pub.id)
	}
	if id, authid, role := publisher(m); id != pub.id || authid != authids[pub] || role != "staff" {
		t.Fatalf("testament event publisher %d %q %q, want %d %q staff", id, authid, role, pub.id, authids[pub])
	}

	// The grant alone, on a retained testament: its identity is kept for
	// a subscriber that comes after the session left.
	pub = join(e, "secure")
	pub.callMeta("wamp.session.add_testament", []any{"com.kept", []any{"kept"}}, map[string]any{"publish_options": map[string]any{"retain": true}})
	pub.drop()
	e.sync()
	late := join(e, "secure")
	late.subscribe("com.kept", map[string]any{"get_retained": true})
	if id, a, role := publisher(late.expect(proto.CodeEvent)); id != pub.id || a != authids[pub] || role != "staff" {
		t.Fatalf("retained testament publisher %d %q %q, want %d %q staff", id, a, role, pub.id, authids[pub])
	}

	// A role without the grant: disclosed only with disclose_me, as its
	// PUBLISH would be.
	psub := join(e, "plain")
	psub.subscribe("com.will", nil)
	hidden, asked := join(e, "plain"), join(e, "plain")
	hidden.callMeta("wamp.session.add_testament", []any{"com.will", []any{"hidden"}}, nil)
	asked.callMeta("wamp.session.add_testament", []any{"com.will", []any{"asked"}}, map[string]any{"publish_options": map[string]any{"disclose_me": true}})
	hidden.drop()
	m = psub.expect(proto.CodeEvent)
	if id, a, role := publisher(m); argsOf(m)[0] != "hidden" || id != 0 || a != "" || role != "" || m.Opt.Has(proto.KeyPublisher) {
		t.Fatalf("a testament of a role without the grant discloses %d %q %q (%s)", id, a, role, describe(m))
	}
	asked.drop()
	if id, _, role := publisher(psub.expect(proto.CodeEvent)); id != asked.id || role != "plain" {
		t.Fatalf("a testament with disclose_me: publisher %d %q, want %d plain", id, role, asked.id)
	}

	// The grant is read when the testament is published, as the publish
	// grant is: a reload that takes it away before the session leaves
	// leaves the testament undisclosed.
	pub = join(e, "secure")
	pub.callMeta("wamp.session.add_testament", []any{"com.will", []any{"after reload"}}, nil)
	z2, err := NewRBAC([]Role{{Name: "staff", Permissions: []Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Publish: true, Subscribe: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	nc := *e.r.Realm("secure").conf()
	nc.Authorizer = z2
	if err := e.r.Reload([]RealmConfig{nc, *e.r.Realm("plain").conf()}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	pub.drop()
	if m := sub.expect(proto.CodeEvent); argsOf(m)[0] != "after reload" || m.Opt.Has(proto.KeyPublisher) {
		t.Fatalf("a testament whose grant a reload took away: %s", describe(m))
	}

	// Across the mesh: the subscriber on node B learns the identity.
	mm, es := newMemMesh(t, 2, 1, realms)
	far := join(es[1], "secure")
	far.subscribe("com.will", nil)
	mm.sync()
	pub = join(es[0], "secure")
	pub.callMeta("wamp.session.add_testament", []any{"com.will", []any{"far"}}, nil)
	pub.drop()
	es[0].sync()
	mm.sync()
	if id, _, role := publisher(far.expect(proto.CodeEvent)); id != pub.id || role != "staff" {
		t.Fatalf("testament event on another node: publisher %d %q, want %d staff", id, role, pub.id)
	}
}
