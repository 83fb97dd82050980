package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The OAuth2 password grant (cmd's UserStore, /oauth/token with
// grant_type=password) refused an authid without a password after the
// work most users' hashes have (Users.VerifyDecoy), whatever the authid:
// a user whose hash had other iterations (carol at 4,000 beside erin at
// 16,000) was refused after other work than every stranger, and a
// stranger's refusal there cost other work than a wrong WAMP ticket for
// it in the same realm (TestTicketDecoyWorkIsTheUsers). Router.VerifyDecoy,
// which cmd now calls, costs what the ticket path does: the work the
// stranger's WAMP-CRA challenge names in that realm. Counted, not timed.
func TestPasswordGrantDecoyWorkIsTheTickets(t *testing.T) {
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
		{AuthID: "dash", Roles: []string{"user"}, Secret: "plain"},
	})
	if err != nil {
		t.Fatal(err)
	}
	realms := []string{"plant1", "plant2"}
	e := newEnv(t, 1, func(c *Config) {
		c.DecoySecret = []byte("a decoy secret of this test")
		for _, name := range realms {
			c.Realms = append(c.Realms, RealmConfig{Name: name, Users: users, Authenticators: []Authenticator{&TicketAuth{Users: users}, &CRAAuth{Users: users}}})
		}
	})
	n := 0
	// ticket returns the PBKDF2 work of a wrong WAMP ticket for authid in
	// realm, each from an address of its own (no limiter delay).
	ticket := func(realm, authid string) int64 {
		t.Helper()
		n++
		c := e.connectFrom(0, proto.JSON, fmt.Sprintf("192.0.2.%d:1000", n))
		c.hello(realm, allFeatures, map[string]any{"authmethods": []any{"ticket"}, "authid": authid})
		c.expect(proto.CodeChallenge)
		w0 := derivedWork.Load()
		c.send(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte("wrong"), Dict: c.opts(nil)})
		if m := c.expect(proto.CodeAbort); string(m.URI) != proto.URIAuthenticationFailed {
			t.Fatalf("%s: ABORT %s", authid, m.URI)
		}
		return derivedWork.Load() - w0
	}
	// grant returns the PBKDF2 work of what the password grant spends
	// for authid in realm.
	grant := func(realm, authid string) int64 {
		w0 := derivedWork.Load()
		e.r.VerifyDecoy(users, realm, authid, "wrong")
		return derivedWork.Load() - w0
	}
	differ, cheap := 0, 0
	for _, realm := range realms {
		for _, id := range []string{"dash", "stranger-0", "stranger-1", "stranger-2", "stranger-3", "stranger-4", "stranger-5", "stranger-6", "stranger-7", "stranger-8", "stranger-9", "stranger-10", "stranger-11"} {
			tw, gw := ticket(realm, id), grant(realm, id)
			if gw < 16000 {
				cheap++
			}
			if tw != gw {
				differ++
				t.Errorf("%s in %s: a wrong WAMP ticket cost %d PBKDF2 iterations, the password grant's refusal %d", id, realm, tw, gw)
			}
		}
	}
	t.Logf("%d of 26 refusals differed from the ticket path's; %d cost less than erin's 16,000, as carol's do", differ, cheap)
	if cheap == 0 {
		t.Errorf("every refusal of an authid without a password cost erin's 16,000 iterations, carol's 4,000: the time of a refusal at /oauth/token tells that carol exists")
	}
}
