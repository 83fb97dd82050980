package route_test

import (
	"context"
	"errors"
	"strconv"
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
// for it are (here removals of 3,000 subscriptions and 3,000
// registrations of the session, each one removal: a repeat of a removal
// still waiting posts nothing): past the bound one is refused with wamp.error.unavailable
// before it does anything, and the loop's backlog is given back as it
// runs them.
func TestRemovalsForBusyLoopBounded(t *testing.T) {
	lr := startLoops(t, 2)
	caller := lr.dialOn(0, proto.MsgPack)
	target := lr.dialOn(1, proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Removals of distinct entries: a repeat of one still waiting posts
	// nothing (TestRepeatedRemovalLeavesRoomForOthers).
	const entries = 3000
	var subIDs, regIDs []uint64
	for i := range entries {
		sub, err := target.Subscribe(ctx, "com.example.sub"+strconv.Itoa(i), func(*client.Event) {}, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := target.Register(ctx, "com.example.proc"+strconv.Itoa(i), func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{}, nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		subIDs, regIDs = append(subIDs, sub.ID()), append(regIDs, reg.ID())
	}

	release := lr.stall(1)
	reason := "com." + strings.Repeat("r", 4000)
	before := heapMiB()
	const n = 2 * entries
	refused := 0
	for i := range n {
		proc, id := "wamp.subscription.remove_subscriber", subIDs[i/2]
		if i%2 == 1 {
			proc, id = "wamp.registration.remove_callee", regIDs[i/2]
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
		_, err := caller.Call(ctx, "wamp.subscription.count_subscribers", []any{subIDs[0]}, nil, nil)
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

// A removal already waiting for the session's loop (the same session and
// registration or subscription) posts nothing more: it is answered, as a
// further kill of a session being killed is. Before, each repeat took its
// place in the loop's bound of waiting removals, so that one caller
// repeating one removal, without a reason, 16,384 times while the loop
// was busy refused every other removal of that loop's sessions, any
// realm's operator's, with wamp.error.unavailable until the loop ran.
func TestRepeatedRemovalLeavesRoomForOthers(t *testing.T) {
	lr := startLoops(t, 2)
	caller := lr.dialOn(0, proto.MsgPack)
	operator := lr.dialOn(0, proto.JSON)
	target := lr.dialOn(1, proto.MsgPack)
	other := lr.dialOn(1, proto.JSON)
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
	osub, err := other.Subscribe(ctx, "com.example.other", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oreg, err := other.Register(ctx, "com.example.otherproc", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	release := lr.stall(1)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	// Past the bound of a loop's waiting removals (8 MiB, 512 bytes
	// counted for a removal without a reason: 16,384 of them).
	const n = 17000
	for i := range n {
		proc, id := "wamp.subscription.remove_subscriber", sub.ID()
		if i%2 == 1 {
			proc, id = "wamp.registration.remove_callee", reg.ID()
		}
		if _, err := caller.Call(ctx, proc, []any{id, target.ID()}, nil, nil); err != nil {
			t.Fatalf("removal %d, a repeat of one waiting for the loop: %v, want it answered", i, err)
		}
	}
	if _, err := operator.Call(ctx, "wamp.subscription.remove_subscriber", []any{osub.ID(), other.ID(), "com.example.cleanup"}, nil, nil); err != nil {
		t.Fatalf("another session's removal after %d repeats of one: %v, want it taken", n, err)
	}
	if _, err := operator.Call(ctx, "wamp.registration.remove_callee", []any{oreg.ID(), other.ID()}, nil, nil); err != nil {
		t.Fatalf("another session's removal after %d repeats of one: %v, want it taken", n, err)
	}
	released = true
	release()

	// The loop ran them: each session is off both, and the same removal
	// is taken again (its mark given back) for a new entry.
	for _, e := range []struct {
		proc string
		id   uint64
		none string
	}{
		{"wamp.subscription.count_subscribers", sub.ID(), proto.URINoSuchSubscription},
		{"wamp.subscription.count_subscribers", osub.ID(), proto.URINoSuchSubscription},
		{"wamp.registration.count_callees", reg.ID(), proto.URINoSuchRegistration},
		{"wamp.registration.count_callees", oreg.ID(), proto.URINoSuchRegistration},
	} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			_, err := caller.Call(ctx, e.proc, []any{e.id}, nil, nil)
			var we *client.Error
			if errors.As(err, &we) && we.URI == e.none {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s(%d) 10 s after the loop ran again: %v, want %s", e.proc, e.id, err, e.none)
			}
		}
	}
	sub2, err := target.Subscribe(ctx, "com.example.sub", func(*client.Event) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	release = lr.stall(1)
	released = false
	if _, err := caller.Call(ctx, "wamp.subscription.remove_subscriber", []any{sub2.ID(), target.ID()}, nil, nil); err != nil {
		t.Fatal(err)
	}
	released = true
	release()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := caller.Call(ctx, "wamp.subscription.count_subscribers", []any{sub2.ID()}, nil, nil)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchSubscription {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second removal of the session, once the first ran: still subscribed 10 s after (%v)", err)
		}
	}
}
