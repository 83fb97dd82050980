package route

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// An operator who rotates a leaked password, secret or key, or stops
// offering an authentication method, and reloads, expects the sessions
// that logged in with the old credential to end: as a user removed from
// the configuration does, they get GOODBYE wamp.close.killed. Sessions
// whose credential did not change stay.
func TestReloadEndsSessionsOfChangedCredentials(t *testing.T) {
	e, key := secureEnv(t, nil)
	seed2 := make([]byte, 32)
	seed2[0] = 9
	key2 := ed25519.NewKeyFromSeed(seed2)
	old := e.r.Realm("secure").conf()
	// dev1 gets a second key, so that both of its keys log in.
	users, err := NewUsers([]*User{old.Users.Lookup("alice"), old.Users.Lookup("bob"),
		{AuthID: "dev1", Roles: []string{"device"}, Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey), key2.Public().(ed25519.PublicKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	reload := func(users *Users, auths ...Authenticator) {
		t.Helper()
		nc := *e.r.Realm("secure").conf()
		nc.Users, nc.Authenticators = users, auths
		if err := e.r.Reload([]RealmConfig{nc}); err != nil {
			t.Fatal(err)
		}
		e.sync()
	}
	all := func(u *Users) []Authenticator {
		return []Authenticator{&TicketAuth{Users: u}, &CRAAuth{Users: u}, &CryptosignAuth{Users: u}}
	}
	reload(users, all(users)...)

	ticket := func(pw string) *tc {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"ticket"}, "authid": "alice"}, func(map[string]any) string { return pw }))
		return c
	}
	cra := func(secret string) *tc {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"wampcra"}, "authid": "bob"}, func(x map[string]any) string {
			return hmacB64([]byte(secret), []byte(x["challenge"].(string)))
		}))
		return c
	}
	sign := func(k ed25519.PrivateKey) *tc {
		c := e.connect(proto.JSON)
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(k.Public().(ed25519.PublicKey))}},
			func(x map[string]any) string {
				ch, _ := hex.DecodeString(x["challenge"].(string))
				return hex.EncodeToString(ed25519.Sign(k, ch)) + x["challenge"].(string)
			}))
		return c
	}
	killed := func(c *tc, who, want string) {
		t.Helper()
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("com.app.t")})
		m := c.recv()
		if m.Type != proto.CodeGoodbye || string(m.URI) != proto.CloseKilled || !strings.Contains(m.Opt.String(proto.KeyMessage), want) {
			t.Fatalf("%s: got %v %s %q, want GOODBYE %s saying %q", who, m.Type, m.URI, m.Opt.String(proto.KeyMessage), proto.CloseKilled, want)
		}
	}
	alive := func(c *tc, who string) {
		t.Helper()
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("com.app.t")})
		if m := c.recv(); m.Type == proto.CodeGoodbye {
			t.Fatalf("%s was told GOODBYE: %q", who, m.Opt.String(proto.KeyMessage))
		}
	}

	alice, bob, dev1, dev1b := ticket("pw-alice"), cra("bob-secret"), sign(key), sign(key2)

	// Rotated: alice's password, dev1's first key. bob unchanged.
	pw, _ := HashPassword("pw-alice-2", 1000)
	u2, err := NewUsers([]*User{{AuthID: "alice", Roles: []string{"user", "ops"}, Password: pw}, old.Users.Lookup("bob"),
		{AuthID: "dev1", Roles: []string{"device"}, Keys: []ed25519.PublicKey{key2.Public().(ed25519.PublicKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	reload(u2, all(u2)...)
	killed(alice, "alice (password changed)", "ticket credential principal alice")
	killed(dev1, "dev1 (its key removed)", "cryptosign credential principal dev1")
	alive(bob, "bob (unchanged)")
	alive(dev1b, "dev1 on its remaining key")
	alice = ticket("pw-alice-2")

	// bob's secret rotated.
	u3, _ := NewUsers([]*User{u2.Lookup("alice"), {AuthID: "bob", Roles: []string{"user"}, Secret: "bob-secret-2"}, u2.Lookup("dev1")})
	reload(u3, all(u3)...)
	killed(bob, "bob (secret changed)", "wampcra credential principal bob")
	alive(alice, "alice (unchanged)")

	// wampcra no longer offered; the ticket still is.
	bob = cra("bob-secret-2")
	reload(u3, &TicketAuth{Users: u3}, &CryptosignAuth{Users: u3})
	killed(bob, "bob (wampcra no longer offered)", "wampcra is no longer offered")
	alive(alice, "alice (ticket still offered)")
	alive(dev1b, "dev1 (cryptosign still offered)")
}

// README (Reload): GOODBYE wamp.close.killed ends the session "whose
// authentication method the realm no longer offers". A session that had
// logged in with an access token as its ticket stayed after a reload that
// took ticket off the realm's authmethods (identityValid checked the
// method only for static credentials; the token's Check knows nothing of
// the realm's methods), while a password-ticket session of the same
// reload was ended. Every session that logged in with one of the realm's
// authenticators is now held to its method; an in-process session (the
// gateway's, whose methods are its own) is not, and an anonymous one
// answers to the realm's anonymous setting as before.
func TestReloadEndsTokenSessionWhenTicketNotOffered(t *testing.T) {
	e, _ := credEnv(t, func(c *Config) { c.Realms[0].Anonymous = true })
	tok := e.tokenLogin("eyJhbGciOiJFZERTQSJ9.jtiA1.loginA")
	gw, err := e.joinInternal(0, JoinOptions{Realm: "secure", Identity: Identity{AuthID: "web", AuthRole: "user", AuthProvider: "jwt"}, AuthMethod: "jwt"})
	if err != nil {
		t.Fatal(err)
	}
	gw.expect(proto.CodeWelcome)
	anon := e.connect(proto.JSON)
	welcomeDetails(t, anon.login(map[string]any{"authmethods": []any{"anonymous"}}, nil))
	old := e.r.Realm("secure").conf()
	nc := *old
	nc.Authenticators = []Authenticator{&CRAAuth{Users: old.Users}}
	if err := e.r.Reload([]RealmConfig{nc}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	req := tok.nextReq()
	tok.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: tok.opts(nil), URI: []byte("com.app.t")})
	m := tok.recv()
	t.Logf("token session after ticket was taken off the realm: %v %s %q", m.Type, m.URI, m.Opt.String(proto.KeyMessage))
	if m.Type != proto.CodeGoodbye || string(m.URI) != proto.CloseKilled {
		t.Fatalf("a session that logged in with an access token as its ticket got %v %s after a reload that no longer offers ticket; want GOODBYE %s",
			m.Type, m.URI, proto.CloseKilled)
	}
	for name, c := range map[string]*tc{"in-process (method jwt)": gw, "anonymous": anon} {
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: c.opts(nil), URI: []byte("com.app.t")})
		if m := c.recv(); m.Type != proto.CodeSubscribed && m.Type != proto.CodeError {
			t.Fatalf("%s session after the reload: %v %s %q, want it kept", name, m.Type, m.URI, m.Opt.String(proto.KeyMessage))
		}
	}
}

// README (Authmethods): "No answer tells which authids exist: ... with
// wampcra it is challenged like a user (a salt that is the same on every
// attempt for that authid ...)". The decoy salt of an authid that is not a
// user is derived from a key hashed from every user's credentials
// (newCRADecoy), so a reload that rotates any one user's password changes
// the salt of every unknown authid while a real user's salt stays. Anyone
// who asked for the challenges of a list of candidate authids before and
// after a routine credential rotation learns exactly which ones exist.
func TestReloadKeepsCRADecoySalts(t *testing.T) {
	pwA, _ := HashPassword("pw-alice", 1000)
	pwC1, _ := HashPassword("pw-carol", 1000)
	pwC2, _ := HashPassword("pw-carol-rotated", 1000)
	build := func(carol *Password) RealmConfig {
		users, err := NewUsers([]*User{
			{AuthID: "alice", Roles: []string{"user"}, Password: pwA},
			{AuthID: "carol", Roles: []string{"user"}, Password: carol},
		})
		if err != nil {
			t.Fatal(err)
		}
		z, _ := NewRBAC([]Role{{Name: "user", Permissions: []Permission{{URI: "com.app.", Match: proto.MatchPrefix, Call: true}}}})
		return RealmConfig{Name: "secure", Users: users, Authorizer: z, Authenticators: []Authenticator{&CRAAuth{Users: users}}}
	}
	secret := []byte("a decoy secret kept under data_dir")
	start := func(carol *Password) *env {
		return newEnv(t, 2, func(c *Config) { c.Realms = []RealmConfig{build(carol)}; c.DecoySecret = secret })
	}
	e := start(pwC1)
	saltAt := func(e *env, authid string) string {
		t.Helper()
		c := e.connect(proto.JSON)
		c.hello("secure", allFeatures, map[string]any{"authmethods": []any{"wampcra"}, "authid": authid})
		m := c.recv()
		if m.Type != proto.CodeChallenge {
			t.Fatalf("%s: got %v %s, want CHALLENGE", authid, m.Type, m.URI)
		}
		v, _ := proto.DecodeValue(m.Dict)
		extra, _ := v.(map[string]any)
		s, _ := extra["salt"].(string)
		c.drop()
		return s
	}
	salt := func(authid string) string { t.Helper(); return saltAt(e, authid) }
	aliceBefore, malloryBefore := salt("alice"), salt("mallory")
	// A routine rotation of another user's password.
	if err := e.r.Reload([]RealmConfig{build(pwC2)}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	aliceAfter, malloryAfter := salt("alice"), salt("mallory")
	t.Logf("alice (a user): salt %s -> %s; mallory (no such user): salt %s -> %s", aliceBefore, aliceAfter, malloryBefore, malloryAfter)
	if aliceBefore != aliceAfter {
		t.Fatal("alice's salt changed; the test assumes it does not")
	}
	if malloryBefore != malloryAfter {
		t.Fatalf("after a reload that rotated carol's password, the unknown authid mallory's decoy salt changed (%s -> %s) "+
			"while the user alice's stayed (%s): comparing challenges across the reload tells which authids exist",
			malloryBefore, malloryAfter, aliceAfter)
	}
	// A restart with the same secret (cmd keeps it under data_dir) and the
	// rotated password: the same salts again.
	if s := saltAt(start(pwC2), "mallory"); s != malloryBefore {
		t.Fatalf("a router started with the same decoy secret gave mallory salt %s, the first %s", s, malloryBefore)
	}
}
