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

// A restore the router goes on refusing for a reason that may pass (the
// procedure registered by another session meanwhile: a standby that took
// over while this Client reconnected; a router that stays busy) is told
// of at WARN once the refusal has lasted the whole backoff (the wait at
// MaxBackoff; a mesh frees a dead node's registration within
// peer_timeout), once, and retried as before: it was logged at INFO at
// each retry, for ever, and an application logging warnings never heard
// that its procedure was no longer provided by it.
func TestRestoreStillRefusedWarnedOnce(t *testing.T) {
	url := startRouter(t)
	var logs lockedBuf
	cfg := Config{URL: url, Realm: "realm1", DialTimeout: wait,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	cl, err := Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	noErr(t, "Connect", err)
	defer cl.Close()
	h := func(context.Context, *Invocation) (*Result, error) { return nil, nil }
	noErr(t, "Register", cl.Register(context.Background(), "p.exclusive", h, nil))
	// A session shorter than MaxBackoff: the redial waits MinBackoff at
	// least, time for the other session to take the procedure.
	s, err := cl.Session(context.Background())
	noErr(t, "Session", err)
	s.tr.close(false) // the connection is lost
	// Another session takes the procedure before the Client is back.
	other := dialRouter(t, url)
	for start := time.Now(); ; {
		if time.Since(start) > 150*time.Millisecond {
			t.Skip("the router took longer than the Client's backoff to free the lost session's registration")
		}
		_, err := other.Register(context.Background(), "p.exclusive", h, nil)
		if err == nil {
			break
		}
		var we *Error
		if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
			t.Fatalf("other Register: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	lines := func(level string) (n int) {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "p.exclusive") && strings.Contains(l, level) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(wait)
	for lines("level=") < 6 { // the refusal, then retries at 200, 400, 400, ... ms
		if time.Now().After(deadline) {
			t.Fatalf("the restore's refusals were not logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := lines("level=WARN"); n != 1 {
		t.Fatalf("%d WARN lines for a restore refused %d times, want 1:\n%s", n, lines("level="), logs.String())
	}
}
