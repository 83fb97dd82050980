package route

import (
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
