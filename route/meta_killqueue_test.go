package route_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A kill is carried out on the target's loop: the caller's loop posts it
// there, with its reason and message (up to 64 KiB), and answers at once.
// The target stays a member of its realm until its loop has run the kill,
// so while that loop was busy (here stalled) every further kill of it was
// posted again: 1,500 kills of one session with a 60 KB message held ~90
// MB in the loop's mailbox, without bound. A session being killed is now
// killed once: further kills of it are answered as before but post
// nothing.
func TestKillsOfBusyLoopsSessionNotQueued(t *testing.T) {
	lr := startLoops(t, 2)
	killer := lr.dialOn(0, proto.MsgPack)
	target := lr.dialOn(1, proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	release := lr.stall(1)
	const n = 1500
	msg := strings.Repeat("m", 60_000)
	before := heapMiB()
	for i := range n {
		if _, err := killer.Call(ctx, "wamp.session.kill", []any{target.ID(), "com.example.gone", msg}, nil, nil); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
	}
	held := heapMiB() - before
	release()
	t.Logf("%d kills of a session on a busy loop, each with a 60 KB message: the router holds %.1f MiB more", n, held)
	if held > 16 {
		t.Fatalf("%d kills of a session on a busy loop, each with a 60 KB message: the router holds %.1f MiB more, want at most 16", n, held)
	}
	select {
	case <-target.Done():
	case <-ctx.Done():
		t.Fatal("the target was not killed")
	}
	var we *client.Error
	if err := target.Err(); !errors.As(err, &we) || we.URI != "com.example.gone" {
		t.Fatalf("the target ended with %v, want GOODBYE com.example.gone", err)
	}
	// Gone: a kill of it now is refused as for any session not in the realm.
	_, err := killer.Call(ctx, "wamp.session.kill", []any{target.ID()}, nil, nil)
	if !errors.As(err, &we) || we.URI != "wamp.error.no_such_session" {
		t.Fatalf("a kill of the session killed: %v, want wamp.error.no_such_session", err)
	}
}
