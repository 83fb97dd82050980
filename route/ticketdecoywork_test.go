package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A wrong ticket for an authid that is not a user spent the work factor
// most users' passwords have (the decoy), whatever the authid: a user
// whose hash had another (carol at 4,000 iterations beside erin at
// 16,000, or an administrator given more than the others) was refused
// after a different amount of work than every authid that is not a user,
// and the time to the ABORT told that carol exists. It now costs the
// work of the salted shape the authid's WAMP-CRA challenge names (picked
// for it in the users' proportions, TestCRADecoyShapesAreTheUsers): each
// user's cost is also that of many strangers, and a stranger's ticket
// costs what its CRA challenge says. The PBKDF2 work is counted, not
// timed (derivedWork, as TestTicketUnknownUserTiming does).
func TestTicketDecoyWorkIsTheUsers(t *testing.T) {
	hash := func(pw string, it int) *Password {
		p, err := HashPassword(pw, it)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	users, err := NewUsers([]*User{
		{AuthID: "carol", Roles: []string{"user"}, Password: hash("c", 4000)},
		{AuthID: "erin", Roles: []string{"user"}, Password: hash("e", 16000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: users, Authenticators: []Authenticator{&TicketAuth{Users: users}, &CRAAuth{Users: users}}}}
	})
	n := 0
	// fail returns the PBKDF2 work from a wrong ticket's AUTHENTICATE
	// to its ABORT, each from an address of its own (no limiter delay).
	fail := func(authid string) int64 {
		t.Helper()
		n++
		c := e.connectFrom(0, proto.JSON, fmt.Sprintf("192.0.2.%d:1000", n))
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": authid})
		c.expect(proto.CodeChallenge)
		w0 := derivedWork.Load()
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
		if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("%s: ABORT %s", authid, m.URI)
		}
		return derivedWork.Load() - w0
	}
	// craWork is the iterations the authid's WAMP-CRA challenge names.
	craWork := func(authid string) int64 {
		t.Helper()
		c := e.connect(proto.JSON)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"wampcra"}, "authid": authid})
		v, _ := proto.DecodeValue(c.expect(proto.CodeChallenge).Dict)
		c.drop()
		switch it := v.(map[string]any)["iterations"].(type) {
		case int64:
			return it
		case uint64:
			return int64(it)
		case float64:
			return int64(it)
		}
		t.Fatalf("%s: the CHALLENGE names no iterations: %v", authid, v)
		return 0
	}
	carol, erin := fail("carol"), fail("erin")
	t.Logf("a wrong ticket costs carol %d PBKDF2 iterations, erin %d", carol, erin)
	cheap := 0
	for i := range 24 {
		id := fmt.Sprintf("stranger-%d", i)
		w := fail(id)
		if w < erin {
			cheap++
		}
		if cw := craWork(id); w < cw || w >= cw+carol/2 {
			t.Errorf("%s: a wrong ticket cost %d iterations, its WAMP-CRA challenge names %d", id, w, cw)
		}
	}
	t.Logf("%d of 24 authids that are not users cost less than erin, as carol does", cheap)
	if cheap == 0 {
		t.Errorf("every authid that is not a user cost at least erin's %d iterations, carol %d: the time to the ABORT tells that carol exists", erin, carol)
	}
}
