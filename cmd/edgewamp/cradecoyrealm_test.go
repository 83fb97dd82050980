package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// README (Authmethods): "No answer tells which authids exist". The decoy
// WAMP-CRA challenge of an authid that is not a user of the realm took
// its salt (and its shape) from the router's decoy key and the authid
// alone, the same in every realm: an authid that is a user of none of
// the router's realms got the same salt in each, while a user of one
// realm got its hash's salt there and a decoy in the others. Two HELLOs,
// one to each realm, told every user of one realm but not the other
// apart from every stranger. The decoy is now keyed by the realm too: a
// stranger's salt differs from realm to realm, as a user's salt differs
// from its decoy salt in a realm it is not a user of.
func TestCRADecoyDiffersAcrossRealms(t *testing.T) {
	path := writeFile(t, "realms.yaml", `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: plant1
    users:
      - {authid: alice, role: user, password: "`+mustHash(t, "alice-pw")+`"}
  - name: plant2
    users:
      - {authid: bob, role: user, password: "`+mustHash(t, "bob-pw")+`"}
`)
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	errGaveUp := errors.New("probe: no answer")
	// salt asks realm for a WAMP-CRA challenge as authid and gives up on
	// it (ABORT from the client: no failed authentication is counted).
	salt := func(realm, authid string) string {
		t.Helper()
		var got map[string]any
		s, err := client.Dial(ctx, client.Config{
			URL: "ws://" + r.addr + "/ws", Realm: realm, AuthID: authid, AuthMethods: []string{"wampcra"},
			OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
				got = extra
				return "", nil, errGaveUp
			},
		})
		if s != nil {
			s.Close()
		}
		if got == nil {
			t.Fatalf("%s in %s: no CHALLENGE: %v\n%s", authid, realm, err, r.logs())
		}
		v, _ := got["salt"].(string)
		if v == "" {
			t.Fatalf("%s in %s: an unsalted CHALLENGE %v (every user here has a password)", authid, realm, got)
		}
		return v
	}
	// A user of one realm: its hash's salt there, a decoy in the other.
	for _, u := range []string{"alice", "bob"} {
		if a, b := salt("plant1", u), salt("plant2", u); a == b {
			t.Fatalf("%s: the same salt in both realms (%s)", u, a)
		}
	}
	same := 0
	const strangers = 16
	for i := range strangers {
		id := fmt.Sprintf("stranger-%d", i)
		a, b := salt("plant1", id), salt("plant2", id)
		if a == b {
			same++
		}
		if again := salt("plant1", id); again != a { // the same on every attempt
			t.Fatalf("%s in plant1: salt %s, then %s", id, a, again)
		}
	}
	t.Logf("%d of %d authids that are users of neither realm got the same salt in both", same, strangers)
	if same > 0 {
		t.Errorf("%d of %d authids that are users of neither realm got the same salt in plant1 and plant2, where alice and bob (each a user of one) got two: two HELLOs tell that an authid is a user of one of them", same, strangers)
	}
}
