package route_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// An authid's lockout at an address is that authid's: an anonymous HELLO
// from the address checks no secret and takes no authid (the router names
// the session), so it is refused only when the whole address is locked
// out. Before, the HELLO's authid was looked up as any login's: a
// cryptosign key that fails (no authid named, the logins that name none
// sharing one count per address) locked out every anonymous client of
// the address, in every realm, for the lockout (three HELLOs with a
// random public key did it, no AUTHENTICATE needed), and an anonymous
// HELLO naming a locked-out authid (Autobahn sends the configured one
// whatever the method) was refused too.
func TestAuthIDLockoutLeavesAnonymousHellos(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := route.HashPassword("pw-alice", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{
		{AuthID: "sensor", Roles: []string{"device"}, Keys: []ed25519.PublicKey{pub}},
		{AuthID: "alice", Roles: []string{"user"}, Password: pw},
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{
		Realms: []route.RealmConfig{
			{Name: "devices", Users: users, Authenticators: []route.Authenticator{&route.CryptosignAuth{Users: users}, &route.TicketAuth{Users: users}}},
			{Name: "public", Anonymous: true, AnonymousRole: "anonymous"},
		},
		Logger: log,
		// Failures answered at once; the authid's lockout after 3.
		AuthLimits: route.AuthLimits{DelayAfter: 100, BlockAfter: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	url := "rs://" + e.Addrs()[0].String()
	dial := func(cfg client.Config) (*client.Session, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg.URL, cfg.Serializer = url, proto.JSON
		cfg.OnChallenge = func(method string, _ map[string]any) (string, map[string]any, error) {
			if method == "ticket" {
				return "wrong", nil, nil
			}
			return "00", nil, nil
		}
		return client.Dial(ctx, cfg)
	}
	refusedWith := func(what string, cfg client.Config, uri string) {
		t.Helper()
		s, err := dial(cfg)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != uri {
			if s != nil {
				s.Close()
			}
			t.Fatalf("%s: got %v, want ABORT %s", what, err, uri)
		}
	}
	// A device whose key the realm does not know, naming no authid.
	stranger, _, _ := ed25519.GenerateKey(rand.Reader)
	unknownKey := client.Config{Realm: "devices", AuthMethods: []string{"cryptosign"}, AuthExtra: map[string]any{"pubkey": hex.EncodeToString(stranger)}}
	for i := range 3 {
		refusedWith("cryptosign with an unknown key "+string(rune('1'+i)), unknownKey, proto.URINoSuchPrincipal)
	}
	// The logins naming no authid are locked out at the address now.
	refusedWith("cryptosign after three failures", unknownKey, proto.URIAuthenticationDenied)
	// Alice's wrong passwords lock alice out here.
	alice := client.Config{Realm: "devices", AuthID: "alice", AuthMethods: []string{"ticket"}}
	for i := range 3 {
		refusedWith("alice's wrong password "+string(rune('1'+i)), alice, proto.URIAuthenticationFailed)
	}
	refusedWith("alice after three failures", alice, proto.URIAuthenticationDenied)

	// Anonymous clients of the same address are not guessing anything.
	for _, c := range []struct {
		what   string
		authid string
	}{{"an anonymous HELLO", ""}, {"an anonymous HELLO naming alice", "alice"}} {
		s, err := dial(client.Config{Realm: "public", AuthID: c.authid})
		if err != nil {
			t.Fatalf("%s, from an address where only authids are locked out: %v, want WELCOME", c.what, err)
		}
		if d := s.Details(); d["authrole"] != "anonymous" || d["authid"] == "alice" {
			t.Errorf("%s: welcomed as %v role %v", c.what, d["authid"], d["authrole"])
		}
		s.Close()
	}
}
