package client

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Every router-initiated UNREGISTERED or UNSUBSCRIBED wrote an INFO line
// with its whole Details, also one naming no registration or
// subscription of the session: a hostile router's revocations of unknown
// ids, each with a few KiB of Details, had the client write a line of
// that size per message (200 of 4 KiB: 200 lines, 0.8 MB of log). A
// revocation of nothing the session holds is ignored; one that revokes is
// logged with its type, id and reason only.
func TestRevocationLogBounded(t *testing.T) {
	var logs lockedBuf
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	r, _ := register(t, s, c, "com.example.p", 14, func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	pad := strings.Repeat("x", 4<<10)
	for i := range 200 {
		c.send(&proto.Message{Type: proto.CodeUnregistered, HasDict: true, Dict: c.raw(map[string]any{"registration": 1000 + i, "reason": "wamp.error.killed", "pad": pad})})
	}
	c.send(&proto.Message{Type: proto.CodeUnregistered, HasDict: true, Dict: c.raw(map[string]any{"registration": 14, "reason": "wamp.error.killed", "pad": pad})})
	for deadline := time.Now().Add(wait); r.Active(); {
		if time.Now().After(deadline) {
			t.Fatal("the registration was not revoked")
		}
		time.Sleep(time.Millisecond)
	}
	// The registration is marked revoked before the line is written: wait
	// for the line (CI at 6b13716 read the log in between, 1 run of 30).
	for deadline := time.Now().Add(wait); !strings.Contains(logs.String(), "revoked"); {
		if time.Now().After(deadline) {
			t.Fatalf("the revocation of the session's registration is not logged:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(logs.String()); n > 4<<10 {
		t.Fatalf("%d bytes of log for 200 revocations of unknown ids and one of the session's, %d lines", n, strings.Count(logs.String(), "\n"))
	}
}
