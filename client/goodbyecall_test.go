package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A call in flight when the router ends the session with GOODBYE (here a kill
// with the reason wamp.close.system_shutdown, as a shutdown sends)
// fails with an error a caller can tell from the router's ERROR answer
// to the call: it wraps ErrSessionLost, and the GOODBYE's reason with
// it (errors.As finds it), where it was the session's *Error itself, the
// same type as an ERROR answer whose URI it could be. A callee's ERROR
// answer with that very URI is still a plain *Error.
func TestCallLostWithSessionIsNotAnAnswer(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	callee := dialRouter(t, url)
	admin := dialRouter(t, url)
	caller := dialRouter(t, url)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	_, err := callee.Register(ctx, "com.slow", func(ctx context.Context, _ *Invocation) (*Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}, nil)
	noErr(t, "Register slow", err)
	_, err = callee.Register(ctx, "com.refuse", func(context.Context, *Invocation) (*Result, error) {
		return nil, &Error{URI: proto.CloseSystemShutdown}
	}, nil)
	noErr(t, "Register refuse", err)

	_, answered := caller.Call(ctx, "com.refuse", nil, nil, nil)
	if _, ok := answered.(*Error); !ok || errors.Is(answered, ErrSessionLost) {
		t.Fatalf("a callee's ERROR answer: %v (%T), want a plain *Error, not ErrSessionLost", answered, answered)
	}

	a := goDo(func() (*Result, error) { return caller.Call(ctx, "com.slow", nil, nil, nil) })
	if !a.pending(100 * time.Millisecond) {
		t.Fatal("the call to com.slow was answered")
	}
	_, err = admin.Call(ctx, "wamp.session.kill", []any{caller.ID(), proto.CloseSystemShutdown}, nil, nil)
	noErr(t, "kill", err)
	_, lost := a.wait(t)
	wampErr(t, caller.Err(), proto.CloseSystemShutdown)
	if _, ok := lost.(*Error); ok || !errors.Is(lost, ErrSessionLost) {
		t.Fatalf("a call in flight at the router's GOODBYE: %v (%T), the same type as the ERROR answer %v; want one wrapping ErrSessionLost", lost, lost, answered)
	}
	if !errors.Is(lost, caller.Err()) {
		t.Fatalf("the call's error %v does not wrap the session's end %v", lost, caller.Err())
	}
	wampErr(t, lost, proto.CloseSystemShutdown) // the reason stays readable

	// A request on the ended session fails so too.
	_, err = caller.Call(ctx, "com.slow", nil, nil, nil)
	if !errors.Is(err, ErrSessionLost) || !errors.Is(err, caller.Err()) {
		t.Fatalf("a call on the ended session: %v, want one wrapping ErrSessionLost and %v", err, caller.Err())
	}
	if err := caller.Publish(ctx, "com.topic", nil, nil, nil); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("a publish on the ended session: %v, want one wrapping ErrSessionLost", err)
	}
}
