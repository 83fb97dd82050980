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

// With MinBackoff = MaxBackoff (a fixed backoff), a restore refused for a
// reason that may pass is told of at WARN once it is still refused after
// a wait of MaxBackoff, as with a growing backoff, not at its first
// refusal: ac3541b's check, a wait that has reached MaxBackoff, held
// from the start, and every refusal that passed at the next retry (a
// mesh's while it frees a dead node's registration) was a WARN.
func TestRestoreRefusedOnceNotWarnedWithFixedBackoff(t *testing.T) {
	url := startRouter(t)
	var logs lockedBuf
	cfg := Config{URL: url, Realm: "realm1", DialTimeout: wait,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	const backoff = 300 * time.Millisecond
	cl, err := Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: backoff, MaxBackoff: backoff})
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
		if time.Since(start) > 200*time.Millisecond {
			t.Skip("the router took longer than the Client's backoff to free the lost session's registration")
		}
		reg, err = other.Register(context.Background(), "p.exclusive", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
		if err == nil {
			break
		}
		var we *Error
		if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
			t.Fatalf("other Register: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	lines := func(what string) (n int) {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "p.exclusive") && strings.Contains(l, what) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(wait)
	for lines("level=") < 1 { // the first refusal
		if time.Now().After(deadline) {
			t.Fatalf("the restore's refusal was not logged:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Freed before the retry: the refusal passes, and the Client's
	// handler answers.
	noErr(t, "other Unregister", other.Unregister(context.Background(), reg))
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
	if n := lines("level=WARN"); n != 0 {
		t.Fatalf("%d WARN lines for a restore refused once and taken at the next retry, want 0:\n%s", n, logs.String())
	}
}
