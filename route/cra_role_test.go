package route

import (
	"encoding/json"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// README (Security, Authmethods): "No answer tells which authids exist";
// with wampcra an unknown authid "is challenged like a user". A user's
// WAMP-CRA challenge text named the role the session would get (the
// user's first role, when HELLO asked for none), and a stranger's the
// users' most common first role: an administrator whose first role is
// its own ("admin" among "device" users) was told apart from any unknown
// authid by one HELLO, its role named, without a guess at its password.
// The challenge text names the role HELLO asked for, for a user and a
// stranger alike ("" when none); WELCOME names the role given.
func TestCRAChallengeDoesNotNameTheUsersRole(t *testing.T) {
	var users []*User
	for _, id := range []string{"dev1", "dev2", "dev3", "root"} {
		pw, err := HashPassword("pw-"+id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		role := "device"
		if id == "root" {
			role = "admin"
		}
		users = append(users, &User{AuthID: id, Roles: []string{role}, Password: pw})
	}
	store, err := NewUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "secure", Users: store, Authenticators: []Authenticator{&CRAAuth{Users: store}}}}
	})
	// login runs a WAMP-CRA login as authid with password pw (a wrong
	// one for a stranger) and returns the challenge text and the answer.
	login := func(authid, pw string) (map[string]any, *proto.Message) {
		t.Helper()
		c := e.connect(proto.JSON)
		var ch map[string]any
		m := c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": authid}, func(x map[string]any) string {
			text := x["challenge"].(string)
			if err := json.Unmarshal([]byte(text), &ch); err != nil {
				t.Fatal(err)
			}
			key, err := DeriveKey(pw, x["salt"].(string), int(x["iterations"].(int64)), int(x["keylen"].(int64)))
			if err != nil {
				t.Fatal(err)
			}
			return CRASignature(key, text)
		})
		if ch == nil {
			t.Fatalf("%s: no CHALLENGE, got %v %s", authid, m.Type, m.URI)
		}
		return ch, m
	}
	rootCh, _ := login("root", "guess")
	strangerCh, _ := login("nobody", "guess")
	devCh, _ := login("dev1", "guess")
	if rootCh["authrole"] != strangerCh["authrole"] || devCh["authrole"] != strangerCh["authrole"] {
		t.Fatalf("challenge texts' authrole: root %q, dev1 %q, an unknown authid %q: root is told apart from a stranger",
			rootCh["authrole"], devCh["authrole"], strangerCh["authrole"])
	}
	// The right password still gets root its role.
	_, m := login("root", "pw-root")
	if d := welcomeDetails(t, m); d["authrole"] != "admin" || d["authid"] != "root" {
		t.Fatalf("WELCOME %v", d)
	}
}
