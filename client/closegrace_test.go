package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A handler that ignores its context held Close's GOODBYE for half of
// ReplyTimeout: with ReplyTimeout raised for a slow link (20 s here) the
// session stayed on the router 10 s after Close began, its
// registrations with it (every call to them refused unavailable, or
// no_available_callee). Close now waits for running handlers
// closeHandlerWait (2.5 s) at most, ReplyTimeout/2 when that is shorter;
// the GOODBYE goes out then, and Close still waits for the handler to
// return before it returns.
func TestCloseBoundsTheWaitForAHandlerIgnoringItsContext(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, ReplyTimeout: 20 * time.Second})
	noErr(t, "Dial", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	started, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	_, err = callee.Register(ctx, "com.example.stuck", func(context.Context, *Invocation) (*Result, error) {
		close(started)
		<-release // not its context
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	stuck := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.stuck", nil, nil, nil) })
	<-started
	begun := time.Now()
	closed := goDo(func() (struct{}, error) { return struct{}{}, callee.Close() })
	// The GOODBYE is through once the router has taken the registration
	// away: a call to it is no_such_procedure.
	var gone time.Duration
	for {
		_, err := caller.Call(ctx, "com.example.stuck", nil, nil, nil)
		var we *Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchProcedure {
			gone = time.Since(begun)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the callee's registration still there 30 s after Close began: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the session left the router %v after Close began (ReplyTimeout 20 s)", gone.Round(10*time.Millisecond))
	if gone > 5*time.Second {
		t.Fatalf("the session left the router %v after Close began, held by a handler ignoring its context; want about %v", gone, closeHandlerWait)
	}
	_, err = stuck.wait(t)
	wampErr(t, err, proto.URICanceled)
	select {
	case <-closed:
		t.Fatal("Close returned while a handler still ran")
	default:
	}
	close(release)
	closed.wait(t)
}

// A handler finishing its work as Close begins (1.5 s of it here, not
// looking at its context, as a handler writing to a database does) got
// its answer through with the default ReplyTimeout (5 s: Close waited
// 2.5 s for it before its GOODBYE). 35cc505 cut that wait to 1 s to bound
// a raised ReplyTimeout's, and such a call's caller got
// wamp.error.canceled instead of its result: the bound is the default's
// wait, closeHandlerWait (2.5 s), so that a ReplyTimeout left at its
// default waits as before and a raised one no longer.
func TestCloseLetsAHandlerFinishingItsWorkAnswer(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := dialRouter(t, url) // ReplyTimeout left at its default
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	started := make(chan struct{})
	const work = 1500 * time.Millisecond
	_, err := callee.Register(ctx, "com.example.work", func(context.Context, *Invocation) (*Result, error) {
		close(started)
		time.Sleep(work) // its work, done whatever its context says
		return &Result{Args: []any{"done"}}, nil
	}, nil)
	noErr(t, "Register", err)
	call := goDo(func() (*Result, error) { return caller.Call(ctx, "com.example.work", nil, nil, nil) })
	<-started
	closed := goDo(func() (struct{}, error) { return struct{}{}, callee.Close() })
	res, err := call.wait(t)
	if err != nil {
		t.Fatalf("a call whose handler finished its work %v after Close began (default ReplyTimeout): %v, want its result", work, err)
	}
	if len(res.Args) != 1 || res.Args[0] != "done" {
		t.Fatalf("result %v, want [done]", res.Args)
	}
	closed.wait(t)
}
