package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A handler that returned between the start of its session's Close and
// the GOODBYE had its YIELD refused (nothing but the GOODBYE was written
// once Close began): the router, told GOODBYE, failed the call, and the
// caller got wamp.error.canceled for a call its callee had answered.
// Close now lets running handlers answer first, within ReplyTimeout
// (their contexts canceled at its start, so that one waiting for its
// context answers at once), and only then says GOODBYE; requests still
// fail with ErrClosed from Close's start.
func TestCloseLetsRunningHandlersYield(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	callee := dialRouter(t, url)
	caller := dialRouter(t, url)
	started, release := make(chan struct{}), make(chan struct{})
	polling := make(chan struct{})
	_, err := callee.Register(ctx, "com.example.slow", func(context.Context, *Invocation) (*Result, error) {
		close(started)
		<-release // not the context: a handler finishing its work
		return &Result{Args: []any{"done"}}, nil
	}, nil)
	noErr(t, "Register", err)
	_, err = callee.Register(ctx, "com.example.poll", func(hctx context.Context, _ *Invocation) (*Result, error) {
		close(polling)
		<-hctx.Done()
		return nil, hctx.Err()
	}, nil)
	noErr(t, "Register poll", err)
	poll := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.poll", nil, nil, nil) })
	call := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.slow", nil, nil, nil) })
	// Both handlers run before Close starts: an INVOCATION that comes
	// once it has is answered unavailable (no_available_callee here),
	// which the poll call met 1 run in 2 under load.
	<-started
	<-polling
	closed := goDo(func() (struct{}, error) { return struct{}{}, callee.Close() })
	<-callee.closing
	select { // without the fix the GOODBYE exchange is over by then
	case <-callee.Done():
	case <-time.After(200 * time.Millisecond):
	}
	if err := callee.Publish(ctx, "com.example.late", nil, nil, nil); err != ErrClosed {
		t.Errorf("Publish while Close waits for a handler: %v, want ErrClosed", err)
	}
	close(release)
	r, err := call.wait(t)
	if err != nil {
		t.Fatalf("the call whose handler returned while its callee closed: %v, want its result", err)
	}
	eq(t, "result", r.Args, []any{"done"})
	_, err = poll.wait(t)
	wampErr(t, err, proto.URICanceled)
	closed.wait(t)
	if err := callee.Err(); err != ErrClosed {
		t.Errorf("callee's Err after Close: %v", err)
	}
}

// While Close waits for running handlers, an INVOCATION that comes starts
// no handler: it was dropped unanswered, and its caller waited for the
// GOODBYE (up to half of ReplyTimeout) to get wamp.error.canceled. It is
// answered wamp.error.unavailable, which the router offers to another
// callee, or answers no_available_callee at once.
func TestCloseRefusesNewInvocationsAsUnavailable(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	callee := dialRouter(t, url)
	caller := dialRouter(t, url)
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	_, err := callee.Register(ctx, "com.example.slow", func(context.Context, *Invocation) (*Result, error) {
		started <- struct{}{}
		<-release
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	first := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.slow", nil, nil, nil) })
	<-started
	closed := goDo(func() (struct{}, error) { return struct{}{}, callee.Close() })
	<-callee.closing
	second := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.slow", nil, nil, nil) })
	// Answered while the first handler still runs (not at the GOODBYE,
	// which waits for it, canceled).
	_, err = second.wait(t)
	wampErr(t, err, proto.URINoAvailableCallee)
	close(release)
	_, err = first.wait(t)
	noErr(t, "first call", err)
	closed.wait(t)
}
