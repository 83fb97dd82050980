package client

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A restore told of at WARN as still refused ("it is not in place on this
// session until a retry passes", ac3541b) is told of at WARN again when a
// retry passes: an application logging warnings heard that its procedure
// was not provided by it, and never that it was again (the retry that
// passed logged nothing at any level).
func TestRestoreStillRefusedThenPassedWarned(t *testing.T) {
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
	// Another session takes the procedure before the Client is back.
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
	waitLog := func(what string) {
		deadline := time.Now().Add(wait)
		for !strings.Contains(logs.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no WARN line saying %q:\n%s", what, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitLog("is still refused")
	noErr(t, "other Unregister", other.Unregister(context.Background(), reg))
	// The Client's retry (every 200 ms) takes the procedure back.
	deadline := time.Now().Add(wait)
	for {
		res, err := other.Call(context.Background(), "p.exclusive", nil, nil, nil)
		if err == nil && len(res.Args) == 1 && res.Args[0] == "client" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Client did not take the procedure back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitLog("in place on this session again")
}
