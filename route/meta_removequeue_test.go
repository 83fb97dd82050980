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

// wamp.subscription.remove_subscriber and wamp.registration.remove_callee
// are carried out on the session's loop: the caller's loop posts each
// there, with its reason (a URI of up to 4 KiB), and answers at once. The
// session stays a subscriber (callee) until its loop has run the removal,
// so while that loop was busy (here stalled) every further removal of it
// was posted again: 20,000 removals with a 4 KB reason from one session,
// each charged one walked entry, held 86.5 MiB in the loop's mailbox,
// without bound. Removals waiting for a loop are bounded as calls waiting
// for it are: past the bound one is refused with wamp.error.unavailable
// before it does anything, and the loop's backlog is given back as it
// runs them.
func TestRemovalsForBusyLoopBounded(t *testing.T) {
	lr := startLoops(t, 2)
	caller := lr.dialOn(0, proto.MsgPack)
	target := lr.dialOn(1, proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := target.Subscribe(ctx, "com.example.sub", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := target.Register(ctx, "com.example.proc", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	release := lr.stall(1)
	reason := "com." + strings.Repeat("r", 4000)
	before := heapMiB()
	const n = 20000
	refused := 0
	for i := range n {
		proc, id := "wamp.subscription.remove_subscriber", sub.ID()
		if i%2 == 1 {
			proc, id = "wamp.registration.remove_callee", reg.ID()
		}
		_, err := caller.Call(ctx, proc, []any{id, target.ID(), reason}, nil, nil)
		var we *client.Error
		switch {
		case err == nil:
		case errors.As(err, &we) && we.URI == proto.URIUnavailable:
			refused++
		default:
			t.Fatalf("removal %d: %v", i, err)
		}
	}
	held := heapMiB() - before
	release()
	t.Logf("%d removals of a session on a busy loop with a 4 KB reason: %d refused, the router holds %.1f MiB more", n, refused, held)
	if held > 16 {
		t.Fatalf("%d removals of a session on a busy loop with a 4 KB reason: the router holds %.1f MiB more, want at most 16", n, held)
	}
	if refused == 0 {
		t.Fatal("no removal refused past the bound")
	}

	// The loop ran them: the session is neither subscriber nor callee, and
	// the backlog was given back (a removal is taken again).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// Its last subscriber gone, the subscription is deleted.
		_, err := caller.Call(ctx, "wamp.subscription.count_subscribers", []any{sub.ID()}, nil, nil)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchSubscription {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("count_subscribers 10 s after the loop ran again: %v, want no_such_subscription", err)
		}
	}
	sub2, err := target.Subscribe(ctx, "com.example.other", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Call(ctx, "wamp.subscription.remove_subscriber", []any{sub2.ID(), target.ID(), reason}, nil, nil); err != nil {
		t.Fatalf("a removal once the loop has run the others: %v", err)
	}
}
