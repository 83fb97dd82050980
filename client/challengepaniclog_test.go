package client

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A Client whose Config.OnChallenge panics on a reconnection (a token
// refresher's bug, say) fails that join and dials again, for ever. The
// panic was recovered (4aa5056) but only a "connecting failed" line at
// INFO told of it, its stack thrown away, where a panic in OnSession or
// OnDisconnect (ebf6af0), a Handler or an event handler is logged at
// ERROR with its stack: an application whose Logger takes warnings and
// errors never heard that its client could not join any more, nor where
// its callback failed. It is logged at ERROR, with its stack.
func TestClientOnChallengePanicLoggedAtError(t *testing.T) {
	url, _ := startCRARouter(t)
	var broken atomic.Bool
	var logs lockedBuf
	sessions := make(chan *Session, 4)
	cfg := Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, AuthID: "alice", AuthMethods: []string{"wampcra"},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError})),
		OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
			if broken.Load() {
				panic("token refresher bug")
			}
			return route.CRASignature("s3cret", extra["challenge"].(string)), nil, nil
		}}
	cl, err := Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnSession: func(s *Session) { sessions <- s }})
	noErr(t, "Connect", err)
	defer cl.Close()
	var s *Session
	select {
	case s = <-sessions:
	case <-time.After(wait):
		t.Fatal("no first session")
	}
	broken.Store(true)
	s.tr.close(false) // the connection lost: the Client joins again
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "token refresher bug") {
		if time.Now().After(deadline) {
			t.Fatalf("OnChallenge's panic on a reconnection not logged at ERROR within %v; log:\n%s", wait, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "challengepaniclog_test.go") {
		t.Fatalf("OnChallenge's panic logged without its stack:\n%s", logs.String())
	}
}
