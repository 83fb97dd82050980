package route

import (
	"fmt"
	"testing"
)

// A reload that adds a user moves some authids that are not users to
// another decoy shape (the users' proportions changed), and an attacker
// who asks for the same authids before and after learns that those whose
// shape moved while their salt stayed are not users: a user's shape
// changes only with a new hash, whose salt is new. Each reload that adds
// or removes a user so eliminates a share of the strangers, and the
// authids that never move are the users. The shares were laid end to end
// in a fixed order: a user of a shape that sorts first moved every later
// edge, and adding one user to a realm of two moved half of the
// strangers, where a third would do (the new user's share). The pick is
// now a weighted rendezvous of the shapes: adding a user moves only the
// strangers its share takes (removing one only those its share had).
func TestCRADecoyShapesMoveLittleAtAReload(t *testing.T) {
	hash := func(it int) *Password {
		p, err := HashPassword("x", it)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := &User{AuthID: "a", Roles: []string{"user"}, Password: hash(1000)}
	b := &User{AuthID: "b", Roles: []string{"user"}, Password: hash(2000)}
	c := &User{AuthID: "c", Roles: []string{"user"}, Password: hash(500)} // sorts first
	before, err := NewUsers([]*User{a, b})
	if err != nil {
		t.Fatal(err)
	}
	after, err := NewUsers([]*User{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	key := decoyKeyFrom([]byte("a fixed decoy secret for this test"))
	shape := func(u *Users, authid string) string {
		t.Helper()
		extra, _, _, err := (&CRAAuth{Users: u}).Challenge(&AuthRequest{Realm: "realm1", AuthID: authid, decoyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(extra["iterations"], "/", extra["salt"])
	}
	const strangers = 600
	moved, toC := 0, 0
	for i := range strangers {
		id := fmt.Sprintf("stranger-%d", i)
		s0, s1 := shape(before, id), shape(after, id)
		if s0 != s1 {
			moved++
		}
		if s1[:4] == "500/" {
			toC++
		}
	}
	t.Logf("adding a third user (its own shape) moved %d of %d strangers' shapes; %d now have its shape", moved, strangers, toC)
	if moved > toC {
		t.Errorf("adding a user moved %d of %d strangers to another shape, where %d (those now in its shape) would do: each reload that adds a user tells more strangers apart than it must", moved, strangers, toC)
	}
}
