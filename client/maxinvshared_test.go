package client

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A callee at Config.MaxInvocations refuses an INVOCATION
// wamp.error.unavailable: on a shared registration edgewamp offers the
// call to another callee (call re-routing), so no call fails while any
// callee has room, and once every callee is full the caller gets
// wamp.error.no_available_callee.
func TestMaxInvocationsSharedRegistrationReroutes(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	release := make(chan struct{})
	var ran [2]atomic.Int32
	for i, limit := range []int{1, 4} {
		callee, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxInvocations: limit})
		noErr(t, "Dial callee", err)
		t.Cleanup(func() { callee.Close() })
		_, err = callee.Register(ctx, "com.example.shared", func(ctx context.Context, inv *Invocation) (*Result, error) {
			ran[i].Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return &Result{}, nil
		}, &RegisterOptions{Invoke: "roundrobin"})
		noErr(t, "Register", err)
	}
	caller := dialRouter(t, url)
	errs := make(chan error, 8)
	call := func() {
		go func() {
			_, err := caller.Call(ctx, "com.example.shared", nil, nil, nil)
			errs <- err
		}()
	}
	// 5 calls: one to the callee with room for one, the other four
	// rerouted to the one with room for four as the first refuses them.
	for range 5 {
		call()
	}
	deadline := time.Now().Add(wait)
	for ran[0].Load()+ran[1].Load() < 5 {
		select {
		case err := <-errs:
			t.Fatalf("a call ended (%v) while a callee had room", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d and %d handlers running, want 1 and 4", ran[0].Load(), ran[1].Load())
		}
		time.Sleep(time.Millisecond)
	}
	if ran[0].Load() != 1 || ran[1].Load() != 4 {
		t.Fatalf("%d and %d handlers running, want 1 and 4", ran[0].Load(), ran[1].Load())
	}
	// Both full: the next is refused by each, and fails.
	call()
	select {
	case err := <-errs:
		wampErr(t, err, proto.URINoAvailableCallee)
	case <-time.After(wait):
		t.Fatal("a call to two full callees did not fail")
	}
	close(release)
	for range 5 {
		select {
		case err := <-errs:
			noErr(t, "Call", err)
		case <-time.After(wait):
			t.Fatal("a running call did not finish")
		}
	}
}
