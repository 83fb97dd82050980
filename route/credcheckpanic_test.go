package route_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// credAuth welcomes any authid without a challenge, with a withdrawable
// Credential whose Check panics (a nil map written) while broken is set.
type credAuth struct{ broken *atomic.Bool }

func (credAuth) Method() string { return "x-cred" }

func (a credAuth) Challenge(req *route.AuthRequest) (map[string]any, any, *route.Identity, error) {
	check := func() string {
		if a.broken.Load() {
			var m map[string]int
			//lint:ignore SA5000 the runtime's own panic is what this test provokes
			m["x"]++
		}
		return ""
	}
	return nil, nil, &route.Identity{AuthID: req.AuthID, AuthRole: "user",
		Credential: &route.Credential{IDs: []string{"login-" + req.AuthID}, Check: check}}, nil
}

func (credAuth) Authenticate(*route.AuthRequest, any, string, map[string]any) (*route.Identity, error) {
	return nil, &route.AuthError{URI: proto.URIAuthenticationFailed, Message: "no"}
}

// An embedder's Credential.Check runs on the event loops: when its
// session is established, after every reload, and at a
// RecheckCredentials. A panic there ended the router process. It is
// recovered: the credential is taken as withdrawn (the login ABORTed,
// the session ended wamp.close.killed with a reason naming an error in
// the check), logged at ERROR and counted as an Authenticator's panic;
// the router goes on.
func TestCredentialCheckPanicEndsOnlyItsSession(t *testing.T) {
	logs := &panicLogBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	broken := &atomic.Bool{}
	realms := []route.RealmConfig{
		{Name: "realm1", Authenticators: []route.Authenticator{credAuth{broken}}},
		{Name: "open", Anonymous: true, AnonymousRole: "anonymous"},
	}
	r, err := route.New(route.Config{Realms: realms, Logger: log})
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(realm, authid string, methods ...string) (*client.Session, error) {
		return client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: realm, Serializer: proto.JSON,
			AuthID: authid, AuthMethods: methods})
	}
	held, err := dial("realm1", "alice", "x-cred")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	other, err := dial("open", "", "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	broken.Store(true)
	// At the login.
	s, err := dial("realm1", "bob", "x-cred")
	if err == nil {
		// Established, then ended at once (holdCredential runs after
		// WELCOME).
		select {
		case <-s.Done():
			err = s.Err()
		case <-ctx.Done():
			t.Fatal("a session whose Credential.Check panics at its login stayed")
		}
	}
	if err == nil || !strings.Contains(err.Error(), "credential") {
		t.Fatalf("a login whose Credential.Check panics: %v, want its end naming the credential's check", err)
	}
	// At a reload.
	if err := r.Reload(realms); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
	case <-ctx.Done():
		t.Fatal("the session whose Credential.Check panics outlived a reload")
	}
	var we *client.Error
	if !errors.As(held.Err(), &we) || we.URI != proto.CloseKilled {
		t.Fatalf("the session whose Credential.Check panics at a reload ended %v, want %s", held.Err(), proto.CloseKilled)
	}
	if err := other.Publish(ctx, "com.still.here", nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatalf("another session after the panics: %v", err)
	}
	if n := r.Stats().AuthenticatorPanics; n < 2 {
		t.Fatalf("AuthenticatorPanics %d, want at least 2", n)
	}
	if !strings.Contains(logs.String(), "Check panicked") || !strings.Contains(logs.String(), "assignment to entry in nil map") {
		t.Fatalf("no ERROR line of the panicking Check; log:\n%s", logs.String())
	}
}
