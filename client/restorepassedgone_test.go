package client

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A restore told of at WARN as still refused, whose next REGISTER is
// answered after the application's Unregister (the Client undoes it, as
// took does), is not told of as "in place on this session again" (9f24f13):
// the application removed the procedure, and the WARN said it provided it.
func TestRestoreStillRefusedThenUnregisteredNotWarnedInPlace(t *testing.T) {
	url := startRouter(t)
	var logs lockedBuf
	cfg := Config{URL: url, Realm: "realm1", DialTimeout: wait,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	cl, err := Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	noErr(t, "Connect", err)
	defer cl.Close()
	h := func(context.Context, *Invocation) (*Result, error) { return &Result{Args: []any{"client"}}, nil }
	noErr(t, "Register", cl.Register(context.Background(), "p.exclusive", h, nil))
	s, err := cl.Session(context.Background())
	noErr(t, "Session", err)
	s.tr.close(false) // the connection is lost
	other := dialRouter(t, url)
	var reg *Registration
	for start := time.Now(); ; {
		if time.Since(start) > 80*time.Millisecond {
			t.Skip("the router took longer than the Client's backoff to free the lost session's registration")
		}
		reg, err = other.Register(context.Background(), "p.exclusive", func(context.Context, *Invocation) (*Result, error) { return &Result{Args: []any{"other"}}, nil }, nil)
		if err == nil {
			break
		}
		var we *Error
		if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
			t.Fatalf("other Register: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "is still refused") {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN line saying the restore is still refused:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The retry that passes has its REGISTERED held until the
	// application has unregistered the procedure.
	s2, err := cl.Session(context.Background())
	noErr(t, "Session", err)
	seen, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s2.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeRegistered {
			once.Do(func() { close(seen); <-release })
		}
	})
	noErr(t, "other Unregister", other.Unregister(context.Background(), reg))
	select {
	case <-seen:
	case <-time.After(wait):
		t.Fatal("the Client's retry did not register the procedure")
	}
	noErr(t, "Client Unregister", cl.Unregister(context.Background(), "p.exclusive"))
	close(release)
	// The Client undoes the registration: the procedure is free again.
	deadline = time.Now().Add(wait)
	for {
		_, err = other.Register(context.Background(), "p.exclusive", h, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Client did not undo the registration made after its Unregister: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the retry's line, if any, follows the undo at once
	if strings.Contains(logs.String(), "in place on this session again") {
		t.Fatalf("a restore undone after Unregister was told of as in place:\n%s", logs.String())
	}
}
