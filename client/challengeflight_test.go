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

// Since Dial stops waiting for Config.OnChallenge at its deadline
// (5f1a1f2), a Client whose OnChallenge does not return (a token fetched
// from an identity provider that hangs, a key waiting for a touch) called
// it again at every attempt while the earlier calls still ran: one more
// goroutine and one more concurrent call of the application's callback
// per attempt, without bound (28 in 2 s at a 50 ms DialTimeout; with the
// defaults one every ~15 s, for as long as it hangs), piling requests on
// the struggling provider, where OnChallenge had always been called one
// at a time. A Client now calls it one at a time: a join that comes while
// an abandoned call still runs fails at once, without calling it, and the
// first join after that call returned calls it again.
func TestClientCallsOnChallengeOneAtATime(t *testing.T) {
	url, _ := startCRARouter(t)
	release := make(chan struct{})
	var logs lockedBuf
	var running, most, calls atomic.Int32
	cfg := Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, AuthID: "alice", AuthMethods: []string{"wampcra"},
		DialTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			calls.Add(1)
			<-release // every call hangs until released
			return route.CRASignature("s3cret", extra["challenge"].(string)), nil, nil
		}}
	connected := goDo(func() (*Client, error) {
		return Connect(context.Background(), cfg, ReconnectConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	})
	// Three more attempts fail while the first call hangs.
	deadline := time.Now().Add(wait)
	for strings.Count(logs.String(), "connecting failed") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 4 failed attempts in %v; log:\n%s", wait, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	hung, most1 := calls.Load(), most.Load()
	close(release)
	cl, err := connected.wait(t)
	noErr(t, "Connect once OnChallenge returns", err)
	defer cl.Close()
	if hung != 1 || most1 != 1 {
		t.Fatalf("while the first OnChallenge call hung: %d calls, at most %d at once; want 1 and 1", hung, most1)
	}
}
