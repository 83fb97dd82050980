package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// One caller pipelining calls to a Go callee whose handler takes a while
// made it start a goroutine for every one, up to the router's
// calls_in_flight per caller session (65,536: 238 MB of stacks and heap
// in 1.6 s, and as much again per caller session). Past
// Config.MaxInvocations running handlers an INVOCATION is refused
// wamp.error.unavailable (the router tries another callee, else the
// caller gets no_available_callee), no handler started.
func TestMaxInvocationsBoundsRunningHandlers(t *testing.T) {
	url := startRouter(t)
	const limit, calls = 8, 20
	callee, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxInvocations: limit})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	ctx := context.Background()
	var running, most atomic.Int32
	release := make(chan struct{})
	_, err = callee.Register(ctx, "com.example.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)

	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := caller.Call(ctx, "com.example.slow", nil, nil, nil)
			errs <- err
		}()
	}
	refused := 0
	timeout := time.After(wait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for refused < calls-limit {
		select {
		case <-tick.C:
			if m := most.Load(); m > limit {
				close(release)
				t.Fatalf("%d handlers ran at once, MaxInvocations %d", m, limit)
			}
		case err := <-errs:
			if err == nil {
				t.Fatal("a call succeeded before its handler was released")
			}
			wampErr(t, err, proto.URINoAvailableCallee)
			refused++
		case <-timeout:
			t.Fatalf("%d calls refused, want %d; %d handlers running at most (MaxInvocations %d)", refused, calls-limit, most.Load(), limit)
		}
	}
	close(release)
	for range limit {
		select {
		case err := <-errs:
			noErr(t, "Call", err)
		case <-time.After(wait):
			t.Fatal("a running call did not finish")
		}
	}
	if m := most.Load(); m > limit {
		t.Fatalf("%d handlers ran at once, MaxInvocations %d", m, limit)
	}
}
