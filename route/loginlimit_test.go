package route_test

import (
	"context"
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

// loginRouter starts a router of cfg on a real RawSocket listener on
// 127.0.0.1 and returns a login to it with the repo's client (JSON),
// answering any challenge with pw: the login's ABORT reason, or "" and
// the WELCOME's details (the session then closed).
func loginRouter(t *testing.T, cfg route.Config) func(c client.Config, pw string) (string, map[string]any) {
	t.Helper()
	url := serveLoginRouter(t, cfg)
	return func(c client.Config, pw string) (string, map[string]any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.URL, c.Serializer = url, proto.JSON
		c.OnChallenge = func(string, map[string]any) (string, map[string]any, error) { return pw, nil, nil }
		s, err := client.Dial(ctx, c)
		if err == nil {
			d := s.Details()
			s.Close()
			return "", d
		}
		var we *client.Error
		if !errors.As(err, &we) {
			t.Fatalf("join: %v, want an ABORT or a WELCOME", err)
		}
		return we.URI, nil
	}
}

// ticketUsers returns users alice (password pw-alice, role user) and bob
// (pw-bob, role user).
func ticketUsers(t *testing.T) *route.Users {
	t.Helper()
	var us []*route.User
	for _, u := range []string{"alice", "bob"} {
		pw, err := route.HashPassword("pw-"+u, 1000)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, &route.User{AuthID: u, Roles: []string{"user"}, Password: pw})
	}
	users, err := route.NewUsers(us)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

// An authid's failures lock it out of the realm they were in, at that
// address: a user of two realms (a staging realm and a production one, or
// one per tenant) whose old password fails in one still logs in to the
// other. The address's own bound counts every realm's failures. Before,
// the authid's record was the address's whatever the realm: three wrong
// passwords as alice in realm "a" got her right password refused
// authentication_denied in realm "b".
func TestAuthIDLockoutIsPerRealm(t *testing.T) {
	users := ticketUsers(t)
	dial := loginRouter(t, route.Config{
		Realms: []route.RealmConfig{
			{Name: "a", Users: users, Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}},
			{Name: "b", Users: users, Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}},
		},
		// Failures answered at once; an authid locked out after 3, the
		// address after 5.
		AuthLimits: route.AuthLimits{DelayAfter: 100, BlockAfter: 3, AddressBlockAfter: 5},
	})
	alice := func(realm string) client.Config {
		return client.Config{Realm: realm, AuthID: "alice", AuthMethods: []string{"ticket"}}
	}
	for i := range 3 {
		if got, _ := dial(alice("a"), "old"); got != proto.URIAuthenticationFailed {
			t.Fatalf("alice's wrong password %d in realm a: %q, want %s", i+1, got, proto.URIAuthenticationFailed)
		}
	}
	if got, _ := dial(alice("a"), "pw-alice"); got != proto.URIAuthenticationDenied {
		t.Fatalf("alice in realm a after 3 failures: %q, want %s", got, proto.URIAuthenticationDenied)
	}
	if got, _ := dial(alice("b"), "pw-alice"); got != "" {
		t.Fatalf("alice's right password in realm b, locked out of a only: ABORT %s, want WELCOME", got)
	}
	// Her failures in b are counted in b: the fourth and fifth failures
	// of the address (whatever the realm) lock the whole address out.
	for i := range 2 {
		if got, _ := dial(alice("b"), "old"); got != proto.URIAuthenticationFailed {
			t.Fatalf("alice's wrong password %d in realm b: %q, want %s", i+1, got, proto.URIAuthenticationFailed)
		}
	}
	bob := client.Config{Realm: "b", AuthID: "bob", AuthMethods: []string{"ticket"}}
	if got, _ := dial(bob, "pw-bob"); got != proto.URIAuthenticationDenied {
		t.Fatalf("bob after the address's 5 failures in two realms: %q, want %s", got, proto.URIAuthenticationDenied)
	}
}

// A client configured with a role its user may not take is refused
// wamp.error.no_such_role each time, its secret having been checked right:
// no guess, so not counted as a failure, and the user's logins with the
// right role are not locked out by it. Before, each such refusal counted:
// at block_after 3 the fourth got authentication_denied, and so did the
// user's own login with its right role, for the lockout.
func TestWrongRoleIsNotAGuess(t *testing.T) {
	users := ticketUsers(t)
	dial := loginRouter(t, route.Config{
		Realms: []route.RealmConfig{
			{Name: "a", Users: users, Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}}},
		},
		AuthLimits: route.AuthLimits{DelayAfter: 100, BlockAfter: 3, AddressBlockAfter: 3},
	})
	admin := client.Config{Realm: "a", AuthID: "alice", AuthRole: "admin", AuthMethods: []string{"ticket"}}
	for i := range 6 {
		if got, _ := dial(admin, "pw-alice"); got != proto.URINoSuchRole {
			t.Fatalf("alice's right password asking for role admin, %d: %q, want %s", i+1, got, proto.URINoSuchRole)
		}
	}
	if got, _ := dial(client.Config{Realm: "a", AuthID: "alice", AuthMethods: []string{"ticket"}}, "pw-alice"); got != "" {
		t.Fatalf("alice with her own role after six no_such_role refusals: ABORT %s, want WELCOME", got)
	}
	// A wrong password asking for the role is a guess, as before.
	for i := range 3 {
		if got, _ := dial(admin, "guess"); got != proto.URIAuthenticationFailed {
			t.Fatalf("a wrong password asking for role admin, %d: %q, want %s", i+1, got, proto.URIAuthenticationFailed)
		}
	}
	if got, _ := dial(admin, "pw-alice"); got != proto.URIAuthenticationDenied {
		t.Fatalf("after three wrong passwords: %q, want %s", got, proto.URIAuthenticationDenied)
	}
}

// An authid locked out at an address is refused the methods that would
// check its secret; a HELLO that offers anonymous too, on a realm that
// allows it, is welcomed anonymously (the router picks among the offered
// methods, in the client's order; an anonymous session is named by the
// router, not the HELLO, so it passes for no one), as a HELLO offering
// anonymous alone already was. With no other method to take, the ABORT
// is the lockout's, not no_matching_auth_method. Before, a HELLO offering
// [ticket, anonymous] and naming alice, locked out, was refused
// authentication_denied: a device configured for both (Autobahn sends
// the configured authid whatever the method) lost the access anyone has.
func TestLockedOutAuthIDFallsBackToAnonymous(t *testing.T) {
	users := ticketUsers(t)
	dial := loginRouter(t, route.Config{
		Realms: []route.RealmConfig{
			{Name: "a", Users: users, Anonymous: true, AnonymousRole: "guest",
				Authenticators: []route.Authenticator{&route.TicketAuth{Users: users}, &route.CRAAuth{Users: users}}},
		},
		AuthLimits: route.AuthLimits{DelayAfter: 100, BlockAfter: 3},
	})
	alice := func(methods ...string) client.Config {
		return client.Config{Realm: "a", AuthID: "alice", AuthMethods: methods}
	}
	for i := range 3 {
		if got, _ := dial(alice("ticket"), "old"); got != proto.URIAuthenticationFailed {
			t.Fatalf("alice's wrong password %d: %q, want %s", i+1, got, proto.URIAuthenticationFailed)
		}
	}
	got, d := dial(alice("ticket", "anonymous"), "pw-alice")
	if got != "" {
		t.Fatalf("HELLO [ticket, anonymous] as alice, locked out, on a realm open to anonymous: ABORT %s, want an anonymous WELCOME", got)
	}
	if d["authmethod"] != "anonymous" || d["authrole"] != "guest" || d["authid"] == "alice" {
		t.Fatalf("welcomed as %v role %v by %v, want an anonymous guest", d["authid"], d["authrole"], d["authmethod"])
	}
	for _, methods := range [][]string{{"ticket"}, {"ticket", "wampcra"}, {"wampcra", "ticket"}} {
		if got, _ := dial(alice(methods...), "pw-alice"); got != proto.URIAuthenticationDenied {
			t.Fatalf("HELLO %v as alice, locked out: %q, want %s", methods, got, proto.URIAuthenticationDenied)
		}
	}
}

// serveLoginRouter starts a router of cfg (logging nowhere unless cfg
// says) on a real RawSocket listener on 127.0.0.1, stopped at the test's
// end, and returns its rs:// URL.
func serveLoginRouter(t *testing.T, cfg route.Config) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	r, err := route.New(cfg)
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
	return url
}
