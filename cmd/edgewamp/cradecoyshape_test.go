package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/route"
)

// README (Authmethods): "No answer tells which authids exist: ... with
// wampcra [an unknown authid] is challenged like a user". The decoy
// challenge had one shape, the most common among the users: salted with
// the users' usual work factor when at least as many users had a
// password as a plain secret. A realm mixing them, as deploy/secure.yaml
// does (alice a password, dashboard a plain WAMP-CRA secret), then told
// the plain users apart by one HELLO: their CHALLENGE alone had no salt
// (and a user whose hash had other iterations than most, by them). An
// unknown authid now gets one of the users' shapes, picked by a keyed
// hash of the authid in the users' proportions, the same on every
// attempt: each user's shape is also that of many authids that are not
// users.
func TestCRADecoyShapesAreTheUsers(t *testing.T) {
	bobHash, err := route.HashPassword("bob-pw", 2000)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "shapes.yaml", `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
    users:
      - {authid: alice, role: user, password: "`+mustHash(t, "alice-pw")+`"}
      - {authid: bob, role: user, password: "`+bobHash.String()+`"}
      - {authid: dashboard, role: viewer, secret: dashboard-secret}
`)
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	errGaveUp := errors.New("probe: no answer")
	// shape asks for a WAMP-CRA challenge as authid and gives up on it
	// (ABORT from the client: no failed authentication is counted).
	shape := func(authid string) (string, string) {
		t.Helper()
		var got map[string]any
		s, err := client.Dial(ctx, client.Config{
			URL: "ws://" + r.addr + "/ws", Realm: "realm1", AuthID: authid, AuthMethods: []string{"wampcra"},
			OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
				got = extra
				return "", nil, errGaveUp
			},
		})
		if s != nil {
			s.Close()
		}
		if got == nil {
			t.Fatalf("%s: no CHALLENGE: %v\n%s", authid, err, r.logs())
		}
		salt, _ := got["salt"].(string)
		if salt == "" {
			return "plain", ""
		}
		return fmt.Sprintf("salted iterations=%v keylen=%v", got["iterations"], got["keylen"]), salt
	}
	users := map[string]string{}
	for _, u := range []string{"alice", "bob", "dashboard"} {
		users[u], _ = shape(u)
	}
	t.Logf("the users' challenges: %v", users)
	seen := map[string]int{}
	const strangers = 48
	for i := range strangers {
		id := fmt.Sprintf("stranger-%d", i)
		sh, salt := shape(id)
		seen[sh]++
		if i < 6 { // the same on every attempt
			if sh2, salt2 := shape(id); sh2 != sh || salt2 != salt {
				t.Fatalf("%s: challenged %q (salt %q), then %q (salt %q)", id, sh, salt, sh2, salt2)
			}
		}
	}
	t.Logf("the challenges of %d authids that are not users: %v", strangers, seen)
	for u, sh := range users {
		if seen[sh] == 0 {
			t.Errorf("user %s's CHALLENGE (%s) is like none of %d unknown authids' (%v): one HELLO tells that %s exists", u, sh, strangers, seen, u)
		}
	}
	for sh := range seen {
		found := false
		for _, u := range users {
			found = found || u == sh
		}
		if !found {
			t.Errorf("unknown authids got a CHALLENGE no user gets (%s)", sh)
		}
	}
}
