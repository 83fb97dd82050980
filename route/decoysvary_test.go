package route

import (
	"fmt"
	"testing"
)

// Users.DecoysVary (cmd's warning for a mesh without data_dir) says
// whether two decoy keys answer the same strangers differently: checked
// here against what CRAAuth and a wrong ticket do under two keys (the
// challenges' salt, iterations and key length; the tickets' PBKDF2 work),
// where a user's answers do not change with the key. Without a CRA user
// there is no user to tell apart: every authid's decoys change alike.
func TestDecoysVaryIsWhatTheKeysChange(t *testing.T) {
	hash := func(it, keyLen int) *Password {
		p, err := HashPassword("pw", it)
		if err != nil {
			t.Fatal(err)
		}
		if keyLen != defaultKeyLen {
			k, _ := DeriveKey("pw", p.Salt, it, keyLen)
			p.KeyLen, p.Key = keyLen, k
		}
		return p
	}
	u := func(id string, p *Password, secret string) *User {
		return &User{AuthID: id, Roles: []string{"user"}, Password: p, Secret: secret}
	}
	cases := []struct {
		name  string
		users []*User
	}{
		{"none", nil},
		{"plain", []*User{u("a", nil, "x"), u("b", nil, "y")}},
		{"one shape", []*User{u("a", hash(1000, 32), ""), u("b", hash(1000, 32), "")}},
		{"two works", []*User{u("a", hash(1000, 32), ""), u("b", hash(2000, 32), "")}},
		{"plain and most common", []*User{u("a", hash(1000, 32), ""), u("b", hash(1000, 32), ""), u("c", nil, "x")}},
		{"plain and default", []*User{u("a", hash(DefaultIterations/100, 32), ""), u("c", nil, "x")}},
		{"key lengths", []*User{u("a", hash(1000, 32), ""), u("b", hash(1000, 64), "")}},
	}
	k1, k2 := decoyKeyFrom([]byte("one node")), decoyKeyFrom([]byte("another node"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			users, err := NewUsers(tc.users)
			if err != nil {
				t.Fatal(err)
			}
			a := &CRAAuth{Users: users}
			var craDiffers, ticketDiffers bool
			for i := range 24 {
				id := fmt.Sprintf("stranger-%d", i)
				var ch [2]string
				var work [2]int64
				for j, k := range []*[32]byte{k1, k2} {
					req := &AuthRequest{Realm: "plant1", AuthID: id, decoyKey: k}
					extra, _, _, _ := a.Challenge(req)
					ch[j] = fmt.Sprint(extra["salt"], extra["iterations"], extra["keylen"])
					w0 := derivedWork.Load()
					users.verifyDecoyFor(decoyKeyOf(req), id, "wrong")
					work[j] = derivedWork.Load() - w0
				}
				craDiffers = craDiffers || ch[0] != ch[1]
				ticketDiffers = ticketDiffers || work[0] != work[1]
			}
			if users.cra.total == 0 {
				craDiffers, ticketDiffers = false, false
			}
			if got := users.DecoysVary(true, false); got != craDiffers {
				t.Errorf("DecoysVary(cra) = %v, the strangers' challenges differ under two keys: %v", got, craDiffers)
			}
			if got := users.DecoysVary(false, true); got != ticketDiffers {
				t.Errorf("DecoysVary(ticket) = %v, the strangers' tickets' work differs under two keys: %v", got, ticketDiffers)
			}
		})
	}
}
