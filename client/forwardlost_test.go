package client

import (
	"context"
	"errors"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A Handler that returns the error of a request on another session lost
// meanwhile (a bridge to a second router that shut down) answers
// URIRuntimeError with the error's text, as for any other error: the lost
// session's GOODBYE reason, which the error wraps, is not the answer of a
// request, and was sent as the ERROR's URI (wamp.close.system_shutdown,
// with the GOODBYE's details). A Handler's own *Error, wrapped, still is.
func TestHandlerForwardsNoLostSessionReason(t *testing.T) {
	url := startRouter(t)
	ctx := context.Background()
	callee := dialRouter(t, url)
	admin := dialRouter(t, url)
	caller := dialRouter(t, url)
	upstream := dialRouter(t, url) // the bridge's session to "another router"
	_, err := admin.Call(ctx, "wamp.session.kill", []any{upstream.ID(), proto.CloseSystemShutdown}, nil, nil)
	noErr(t, "kill", err)
	<-upstream.Done()
	_, err = callee.Register(ctx, "com.bridge", func(ctx context.Context, _ *Invocation) (*Result, error) {
		return upstream.Call(ctx, "com.elsewhere", nil, nil, nil)
	}, nil)
	noErr(t, "Register bridge", err)
	_, err = callee.Register(ctx, "com.own", func(context.Context, *Invocation) (*Result, error) {
		return nil, errors.Join(errors.New("context"), &Error{URI: "com.example.own"})
	}, nil)
	noErr(t, "Register own", err)

	_, err = caller.Call(ctx, "com.bridge", nil, nil, nil)
	e := wampErr(t, err, URIRuntimeError)
	if len(e.Args) != 1 {
		t.Fatalf("the bridge's answer has arguments %v, want the error's text", e.Args)
	}
	_, err = caller.Call(ctx, "com.own", nil, nil, nil)
	wampErr(t, err, "com.example.own")
}
