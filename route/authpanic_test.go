package route_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// panicAuth is an embedder's Authenticator with bugs: its Challenge
// panics for the authid "boom" (a nil map written), its Authenticate
// for any signature but "good", with a value quoting the signature.
type panicAuth struct{}

func (panicAuth) Method() string { return "x-panic" }

func (panicAuth) Challenge(req *route.AuthRequest) (map[string]any, any, *route.Identity, error) {
	if req.AuthID == "boom" {
		var m map[string]int
		//lint:ignore SA5000 the runtime's own panic is what this test provokes
		m[req.AuthID]++
	}
	return map[string]any{}, nil, nil, nil
}

func (panicAuth) Authenticate(req *route.AuthRequest, _ any, sig string, _ map[string]any) (*route.Identity, error) {
	if sig != "good" {
		panic("unexpected signature " + sig)
	}
	return &route.Identity{AuthID: req.AuthID, AuthRole: "user"}, nil
}

// panicLogBuf is a log destination safe for the router's goroutines.
type panicLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *panicLogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *panicLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// An embedder's Authenticator that panics refuses that login, and only
// it: ABORT wamp.error.authentication_failed, a line at ERROR naming the
// authmethod and not the credentials, the worker kept. Before, the panic
// on the worker's goroutine ended the whole router process.
func TestAuthenticatorPanicRefusesLogin(t *testing.T) {
	logs := &panicLogBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := route.New(route.Config{
		Realms:      []route.RealmConfig{{Name: "realm1", Authenticators: []route.Authenticator{panicAuth{}}}},
		Logger:      log,
		AuthWorkers: 1, // the one worker must outlive every panic
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
	const secret = "hunter2-secret"
	dial := func(authid, sig string) (*client.Session, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: "realm1", Serializer: proto.JSON,
			AuthID: authid, AuthMethods: []string{"x-panic"},
			OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return sig, nil, nil }})
	}
	for i, c := range []struct{ authid, sig string }{
		{"boom", "good"}, {"alice", secret}, {"boom", "good"}, {"alice", secret},
	} {
		s, err := dial(c.authid, c.sig)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != proto.URIAuthenticationFailed {
			if s != nil {
				s.Close()
			}
			t.Fatalf("login %d (authid %s), whose Authenticator panics: got %v, want ABORT %s", i, c.authid, err, proto.URIAuthenticationFailed)
		}
	}
	s, err := dial("alice", "good")
	if err != nil {
		t.Fatalf("a good login after the panics: %v", err)
	}
	s.Close()
	out := logs.String()
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "panicked") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("%d ERROR lines of a panicking Authenticator, want 4; log:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.Contains(l, "authmethod=x-panic") {
			t.Errorf("the line does not name the authmethod: %s", l)
		}
	}
	if strings.Contains(out, secret) {
		t.Errorf("the log quotes the signature:\n%s", out)
	}
	t.Logf("%s", lines[0][:min(len(lines[0]), 600)])
	t.Logf("%s", lines[1][:min(len(lines[1]), 600)])
}
