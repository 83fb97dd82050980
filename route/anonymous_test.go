package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// An anonymous session cannot choose its authid: HELLO.Details.authid
// "alice" does not make it alice in WELCOME, in publisher and caller
// disclosure, in the session meta API, in authid black/white lists, nor
// for wamp.session.kill_by_authid. (The router used to take the anonymous
// authid from HELLO.)
func TestAnonymousAuthIDAssigned(t *testing.T) {
	pw, _ := HashPassword("pw-alice", 1000)
	users, err := NewUsers([]*User{{AuthID: "alice", Roles: []string{"user"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 2, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "mixed", Anonymous: true, Users: users, Authenticators: []Authenticator{&TicketAuth{Users: users}}}}
	})
	mon := e.connect(proto.JSON)
	mon.hello("mixed", allFeatures, nil)
	mon.id = mon.expect(proto.CodeWelcome).ID
	mon.subscribe("wamp.session.on_join", nil)

	alice := e.connect(proto.JSON)
	alice.hello("mixed", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"})
	alice.expect(proto.CodeChallenge)
	alice.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("pw-alice"), Dict: alice.opts(nil)})
	alice.id = alice.expect(proto.CodeWelcome).ID
	mon.expect(proto.CodeEvent)

	spoof := func(ser proto.Serializer) (*tc, string) {
		c := e.connect(ser)
		c.hello("mixed", allFeatures, map[string]any{"authmethods": []any{"anonymous"}, "authid": "alice", "authrole": "user"})
		w := c.expect(proto.CodeWelcome)
		c.id = w.ID
		d := welcomeDetails(t, w)
		id, _ := d["authid"].(string)
		if id == "" || id == "alice" || d["authrole"] != "anonymous" || d["authmethod"] != "anonymous" {
			t.Fatalf("anonymous HELLO with authid alice: WELCOME %v", d)
		}
		join := argsOf(mon.expect(proto.CodeEvent))[0].(map[string]any)
		if join["authid"] != id {
			t.Fatalf("on_join authid %v, want the assigned %q", join["authid"], id)
		}
		return c, id
	}
	m1, id1 := spoof(proto.JSON)
	m2, id2 := spoof(proto.MsgPack)
	if id1 == id2 {
		t.Fatalf("two anonymous sessions got the same authid %q", id1)
	}

	// Publisher disclosure.
	alice.subscribe("com.t", nil)
	m1.publish("com.t", map[string]any{"disclose_me": true}, []any{"hi"}, nil)
	ev := alice.expect(proto.CodeEvent)
	if got := ev.Opt.String(proto.KeyPublisherAuthID); got != id1 {
		t.Fatalf("publisher_authid %q, want %q", got, id1)
	}
	// Caller disclosure.
	alice.register("com.p", nil)
	m1.call("com.p", map[string]any{"disclose_me": true}, nil, nil)
	inv := alice.expect(proto.CodeInvocation)
	if got := inv.Opt.String(proto.KeyCallerAuthID); got != id1 {
		t.Fatalf("caller_authid %q, want %q", got, id1)
	}
	alice.yield(inv.Request, nil, nil)
	m1.expect(proto.CodeResult)
	// Meta API.
	if d := m2.callMeta("wamp.session.get", []any{m1.id}, nil).(map[string]any); d["authid"] != id1 {
		t.Fatalf("wamp.session.get authid %v, want %q", d["authid"], id1)
	}
	// Authid white list: only the real alice.
	m1.subscribe("com.t", nil)
	m2.publish("com.t", map[string]any{"eligible_authid": []any{"alice"}}, []any{"for alice"}, nil)
	alice.expect(proto.CodeEvent)
	m1.quiet()
	// kill_by_authid "alice" ends the real alice only.
	if n, _ := m2.callMeta("wamp.session.kill_by_authid", []any{"alice"}, nil).([]any); len(n) != 1 || n[0] != int64(alice.id) { // the sessions killed
		t.Fatalf("kill_by_authid alice killed %v sessions, want 1", n)
	}
	alice.expect(proto.CodeGoodbye)
	m1.quiet()
}
