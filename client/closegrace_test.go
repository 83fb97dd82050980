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
// closeHandlerWait (1 s) at most, ReplyTimeout/2 when that is shorter;
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
