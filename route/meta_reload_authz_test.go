package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// README (Reload): "Nothing is let through by the old grants meanwhile: a
// REGISTER, SUBSCRIBE or CALL ... is judged by the new ones from the first
// turn", and "A call in flight that the caller's role may no longer make
// is ended: ERROR wamp.error.not_authorized". A meta call that walks the
// realm (wamp.session.kill_all, list, kill_by_authrole ...) and waits for
// its session's walk debt was authorized when it arrived only: a reload
// that took the call's grant away while it waited let it run afterwards,
// and a kill_all queued by a role the operator had just withdrawn it from
// still ended every session of the realm.
func TestQueuedMetaCallJudgedByReloadedGrants(t *testing.T) {
	realm := killGrantRealm(t, "wamp.session.kill_all")
	e := newEnv(t, 2, func(c *Config) { c.Realms = []RealmConfig{realm(true)} })
	admin := e.joinAs(proto.JSON, "admin")
	victim := e.joinAs(proto.JSON, "victim")
	admin.exec.do(func() { admin.sess.walks = walkBudget{tokens: -walkRate, at: e.clock.now().UnixNano()} }) // a second's debt
	kill := admin.call("wamp.session.kill_all", nil, nil, nil)
	count := admin.call("wamp.session.count", nil, nil, nil)
	var waiting int
	admin.exec.do(func() { waiting = len(admin.sess.walks.q) })
	if waiting != 2 {
		t.Fatalf("%d meta calls waiting for the session's debt, want 2", waiting)
	}
	if err := e.r.Reload([]RealmConfig{realm(false)}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.advance(2 * time.Second)
	m := admin.recv()
	if m.Type != proto.CodeError || m.Request != kill || string(m.URI) != proto.URINotAuthorized {
		t.Fatalf("the queued kill_all after a reload that withdrew its grant: %s, want ERROR %s", describe(m), proto.URINotAuthorized)
	}
	// The call the role may still make is answered.
	if m := admin.expect(proto.CodeResult); m.Request != count {
		t.Fatalf("RESULT for request %d, want %d (count)", m.Request, count)
	}
	victim.quiet()
	if victim.peer.closed.Load() {
		t.Fatal("the victim's session was ended by a kill_all whose grant the reload had withdrawn")
	}
}

// killGrantRealm returns realm "trusted" (trustAuth: role "user") whose
// role may call wamp.session.count, and proc with kill.
func killGrantRealm(t *testing.T, proc string) func(kill bool) RealmConfig {
	return func(kill bool) RealmConfig {
		z, err := NewRBAC([]Role{{Name: "user", Permissions: []Permission{
			{URI: proc, Match: proto.MatchExact, Call: kill},
			{URI: "wamp.session.count", Match: proto.MatchExact, Call: true},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return RealmConfig{Name: "trusted", Authenticators: []Authenticator{trustAuth{}}, Authorizer: z}
	}
}

// On a mesh, likewise for a meta call waiting for its session's debt to
// ask the other nodes (nextAsk): a wamp.session.kill of a session on
// another node, queued before a reload that took the grant away, had that
// node end the session after it.
func TestMeshQueuedMetaCallJudgedByReloadedGrants(t *testing.T) {
	realm := killGrantRealm(t, "wamp.session.kill")
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.Realms = []RealmConfig{realm(true)} })
	victim := es[1].joinAs(proto.MsgPack, "victim")
	mm.sync()
	e := es[0]
	admin := e.joinAs(proto.MsgPack, "admin")
	admin.exec.do(func() { admin.sess.walks = walkBudget{tokens: -walkRate, at: e.clock.now().UnixNano()} }) // a second's debt
	kill := admin.call("wamp.session.kill", nil, []any{victim.id}, nil)
	mm.sync()
	var waiting int
	admin.exec.do(func() { waiting = len(admin.sess.asks.q) })
	if waiting != 1 {
		t.Fatalf("%d meta calls waiting to ask the other nodes, want 1", waiting)
	}
	if err := e.r.Reload([]RealmConfig{realm(false)}); err != nil {
		t.Fatal(err)
	}
	mm.sync()
	e.advance(2 * time.Second)
	mm.sync()
	m := admin.recv()
	if m.Type != proto.CodeError || m.Request != kill || string(m.URI) != proto.URINotAuthorized {
		t.Fatalf("the queued kill after a reload that withdrew its grant: %v %s, want ERROR %s", m.Type, describe(m), proto.URINotAuthorized)
	}
	mm.sync()
	victim.quiet()
	if victim.peer.closed.Load() {
		t.Fatal("the other node's session was ended by a kill whose grant the reload had withdrawn")
	}
}
