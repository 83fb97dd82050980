package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A panicking OnProgress gives back what its call held towards
// Config.MaxBacklog. The bound is the session's (813cd0b): the caller's
// goroutine may recover the panic and go on (await's documentation), and
// what the call held stayed counted for ever, so that every later stream
// of the session past the rest of the bound ended with ErrBacklog. Here
// a 64 KiB bound and a call whose OnProgress panics on its first 24 KiB
// result: a later call of the session with two 24 KiB results must
// succeed, and the count go back to 0.
func TestOnProgressPanicGivesBacklogBack(t *testing.T) {
	url := startRouter(t)
	const limit = 64 << 10
	chunk := strings.Repeat("x", 24<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	caller := dialBacklog(t, ctx, url, limit, "Dial caller")
	callee := dialRouter(t, url)
	_, err := callee.Register(ctx, "com.stream", func(ctx context.Context, inv *Invocation) (*Result, error) {
		for range 2 {
			if err := inv.SendProgress([]any{chunk}, nil); err != nil {
				return nil, err
			}
		}
		return &Result{Args: []any{"end"}}, nil
	}, nil)
	noErr(t, "Register", err)

	counted := func() int {
		caller.mu.Lock()
		defer caller.mu.Unlock()
		return caller.streamHeld
	}
	func() {
		defer func() {
			if p := recover(); p == nil {
				t.Fatal("OnProgress did not panic")
			}
		}()
		caller.Call(ctx, "com.stream", nil, nil, &CallOptions{OnProgress: func(*Result) { panic("OnProgress fails") }})
	}()
	deadline := time.Now().Add(2 * time.Second)
	for counted() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the session still counts %d bytes of streams held once the panicking call ended", counted())
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := 0
	res, err := caller.Call(ctx, "com.stream", nil, nil, &CallOptions{OnProgress: func(*Result) { got++ }})
	if errors.Is(err, ErrBacklog) {
		t.Fatalf("a later call of the session failed with %v: the panicking call's results still count", err)
	}
	noErr(t, "later call", err)
	if got != 2 || len(res.Args) != 1 {
		t.Errorf("later call: %d progressive results, final %v; want 2 and [end]", got, res.Args)
	}
}
