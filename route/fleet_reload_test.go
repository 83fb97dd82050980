package route

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A reload checks that each session's static user still holds the
// credential it logged in with. For cryptosign that hashed every key of
// the user until one matched the session's mark: a fleet of devices
// logged in under one authid with a key each cost each device's session
// as many hashes as the fleet has keys, all in the reload's first turn of
// the loop (not in turns, the identity pass is not): 2,000 such sessions
// held it 0.75-1.9 s at every reload, and the count grows with the
// square of the fleet. The key is now looked up by its mark. Measured
// by the work, not the clock: the allocations of the identity checks of
// 128 sessions of a 128-key principal, per session (each hash of a key
// allocated), and the checks still end a session whose key was removed.
func TestReloadKeyCheckDoesNotScaleWithKeys(t *testing.T) {
	const n = 128
	keys := make([]ed25519.PrivateKey, n)
	pubs := make([]ed25519.PublicKey, n)
	for i := range keys {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(i), 0xfe
		keys[i] = ed25519.NewKeyFromSeed(seed)
		pubs[i] = keys[i].Public().(ed25519.PublicKey)
	}
	realm := func(pubs []ed25519.PublicKey) RealmConfig {
		users, err := NewUsers([]*User{{AuthID: "fleet", Roles: []string{"device"}, Keys: pubs}})
		if err != nil {
			t.Fatal(err)
		}
		return RealmConfig{Name: "secure", Users: users, Authenticators: []Authenticator{&CryptosignAuth{Users: users}}}
	}
	e := newEnv(t, 1, func(c *Config) { c.Realms = []RealmConfig{realm(pubs)} })
	devs := make([]*tc, n)
	for i := range devs {
		c := e.connect(proto.JSON)
		k := keys[i]
		welcomeDetails(t, c.login(map[string]any{"authmethods": []any{"cryptosign"}, "authextra": map[string]any{"pubkey": hex.EncodeToString(pubs[i])}},
			func(x map[string]any) string {
				ch, _ := hex.DecodeString(x["challenge"].(string))
				return hex.EncodeToString(ed25519.Sign(k, ch)) + x["challenge"].(string)
			}))
		devs[i] = c
	}
	var sessions []*Session
	e.execs[0].do(func() {
		e.r.mu.Lock()
		for _, c := range devs {
			sessions = append(sessions, e.r.sessions[c.id])
		}
		e.r.mu.Unlock()
	})
	check := func() (valid int) {
		e.execs[0].do(func() {
			for _, ss := range sessions {
				if ss.stillValid(e.r) == "" {
					valid++
				}
			}
		})
		return valid
	}
	if v := check(); v != n {
		t.Fatalf("%d of %d sessions valid before any change", v, n)
	}
	perSession := testing.AllocsPerRun(5, func() { check() }) / n
	st := time.Now()
	if err := e.r.Reload([]RealmConfig{realm(pubs)}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions of a %d-key principal: %.1f allocations per session's identity check; a reload %v", n, n, perSession, time.Since(st))
	if perSession > 16 {
		t.Fatalf("the identity check allocates %.0f times per session, growing with the principal's %d keys", perSession, n)
	}
	// The key of the last device removed: its session ends, the others stay.
	if err := e.r.Reload([]RealmConfig{realm(pubs[:n-1])}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	if m := devs[n-1].expect(proto.CodeGoodbye); string(m.URI) != proto.CloseKilled {
		t.Fatalf("the device whose key was removed: GOODBYE %s", m.URI)
	}
	devs[0].quiet()
}
