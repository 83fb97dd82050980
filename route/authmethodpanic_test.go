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

// flakyMethodAuth is an embedder's Authenticator whose Method panics (a
// nil map written) while broken is set; it takes any authid with the
// signature "good".
type flakyMethodAuth struct {
	name   string
	broken *atomic.Bool
}

func (a flakyMethodAuth) Method() string {
	if a.broken != nil && a.broken.Load() {
		var m map[string]int
		//lint:ignore SA5000 the runtime's own panic is what this test provokes
		m[a.name]++
	}
	return a.name
}

func (flakyMethodAuth) Challenge(*route.AuthRequest) (map[string]any, any, *route.Identity, error) {
	return map[string]any{}, nil, nil, nil
}

func (flakyMethodAuth) Authenticate(req *route.AuthRequest, _ any, sig string, _ map[string]any) (*route.Identity, error) {
	if sig != "good" {
		return nil, &route.AuthError{URI: proto.URIAuthenticationFailed, Message: "bad signature"}
	}
	return &route.Identity{AuthID: req.AuthID, AuthRole: "user"}, nil
}

// An Authenticator whose Method panics (it runs on the event loops, at
// each HELLO that asks for a method, and at a reload's re-check of the
// sessions) is skipped: a login asking only for its method gets ABORT
// wamp.error.authentication_failed naming an error in an authenticator,
// a login asking for another method of the realm goes on, a session of
// the method ends at a reload, a session of another method stays; the
// panics are logged at ERROR and counted (Stats.AuthenticatorPanics,
// edgewamp_auth_panics_total{in="authenticator"}), as an Authorizer's
// are (AuthorizerPanics). Before, the panic on the event loop ended the
// router process.
func TestAuthenticatorMethodPanicRefusesLogin(t *testing.T) {
	logs := &panicLogBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	broken := &atomic.Bool{}
	realms := []route.RealmConfig{
		{Name: "realm1", Authenticators: []route.Authenticator{flakyMethodAuth{"x-flaky", broken}, flakyMethodAuth{"x-good", nil}}},
		{Name: "open", Anonymous: true, AnonymousRole: "anonymous", Authorizer: boomAuthorizer{}},
	}
	r, err := route.New(route.Config{Realms: realms, Logger: log, AuthWorkers: 1})
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
	dial := func(realm string, methods ...string) (*client.Session, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: realm, Serializer: proto.JSON,
			AuthID: "alice", AuthMethods: methods,
			OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "good", nil, nil }})
	}
	flaky, err := dial("realm1", "x-flaky")
	if err != nil {
		t.Fatalf("a login while Method works: %v", err)
	}
	defer flaky.Close()
	good, err := dial("realm1", "x-good")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	broken.Store(true)
	for i := range 2 {
		s, err := dial("realm1", "x-flaky")
		var we *client.Error
		if !errors.As(err, &we) || we.URI != proto.URIAuthenticationFailed || !strings.Contains(we.Error(), "authenticator") {
			if s != nil {
				s.Close()
			}
			t.Fatalf("login %d asking for the method of an Authenticator whose Method panics: got %v, want ABORT %s naming an error in an authenticator", i, err, proto.URIAuthenticationFailed)
		}
	}
	s, err := dial("realm1", "x-good")
	if err != nil {
		t.Fatalf("a login asking for the realm's other method: %v", err)
	}
	s.Close()
	if n := r.Stats().AuthenticatorPanics; n < 3 {
		t.Fatalf("AuthenticatorPanics %d, want at least 3 (the three HELLOs)", n)
	}

	// A reload re-checks the sessions' methods: the broken one's ends,
	// the other stays.
	if err := r.Reload(realms); err != nil {
		t.Fatal(err)
	}
	select {
	case <-flaky.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session of the method that cannot be named outlived a reload")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := good.Publish(ctx, "com.still.here", nil, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatalf("the session of the other method after the reload: %v", err)
	}

	// An Authorizer's panics are counted too.
	anon, err := dial("open", "anonymous")
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	before := r.Stats().AuthorizerPanics
	var we *client.Error
	if _, err := anon.Call(ctx, "com.boom", nil, nil, nil); !errors.As(err, &we) || we.URI != proto.URINotAuthorized {
		t.Fatalf("a CALL whose Authorizer panics: %v, want %s", err, proto.URINotAuthorized)
	}
	if n := r.Stats().AuthorizerPanics - before; n != 1 {
		t.Fatalf("AuthorizerPanics +%d, want +1", n)
	}

	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "Method panicked") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 3 || !strings.Contains(lines[0], "assignment to entry in nil map") || !strings.Contains(lines[0], "realm=realm1") {
		t.Fatalf("%d ERROR lines of a panicking Method, want at least 3 naming the realm and the panic; log:\n%s", len(lines), logs.String())
	}
	t.Logf("%s", lines[0][:min(len(lines[0]), 400)])
}

// boomAuthorizer panics (a nil map written) on the URI com.boom and
// allows the rest.
type boomAuthorizer struct{}

func (boomAuthorizer) Authorize(_ string, _ route.Action, uri string) bool {
	if uri == "com.boom" {
		var m map[string]int
		//lint:ignore SA5000 the runtime's own panic is what this test provokes
		m[uri]++
	}
	return true
}
