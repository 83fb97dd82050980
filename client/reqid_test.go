package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Request ids wrap to 1 past 2^53 (WAMP §IDs). Past the wrap the id of
// a request still pending (a long call made before it) was given again:
// the router ABORTs a CALL reusing a pending call's id
// (protocol_violation), and the session ended with every call in flight.
func TestRequestIDWrapSkipsPendingIDs(t *testing.T) {
	url := startRouter(t)
	callee := dialRouter(t, url)
	caller := dialRouter(t, url)
	ctx := context.Background()
	release := make(chan struct{})
	_, err := callee.Register(ctx, "com.example.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{Args: []any{"slow"}}, nil
	}, nil)
	noErr(t, "Register slow", err)
	_, err = callee.Register(ctx, "com.example.fast", func(ctx context.Context, inv *Invocation) (*Result, error) {
		return &Result{Args: []any{"fast"}}, nil
	}, nil)
	noErr(t, "Register fast", err)

	slow := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.slow", nil, nil, nil) })
	// Wait for the slow call to be pending: its id is the session's
	// first (1).
	deadline := time.Now().Add(wait)
	for {
		caller.mu.Lock()
		_, pending := caller.calls[1]
		caller.mu.Unlock()
		if pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow call is not pending under id 1")
		}
		time.Sleep(time.Millisecond)
	}
	caller.mu.Lock()
	caller.nextReq = proto.MaxID - 1
	caller.mu.Unlock()
	for i := range 3 { // ids 2^53, then 1 (pending: skipped), 2, 3
		r, err := caller.Call(ctx, "com.example.fast", nil, nil, nil)
		if err != nil {
			t.Fatalf("call %d around the id wrap: %v (session: %v)", i, err, caller.Err())
		}
		eq(t, "fast result", r.Args, []any{"fast"})
	}
	close(release)
	r, err := slow.wait(t)
	noErr(t, "slow Call", err)
	eq(t, "slow result", r.Args, []any{"slow"})
}
