package client

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A Handler's panic was sent to its caller: the ERROR's argument was
// "handler panic: " and the panic's value, which another party (any
// caller the router lets call the procedure) could read: a value
// formatted from the callee's state (a struct with a token, a path, a
// query). The caller gets wamp.error.runtime_error with a fixed text;
// the panic, its value and its stack, is logged in the callee.
func TestHandlerPanicValueNotSentToCaller(t *testing.T) {
	const secret = "s3cr3t-token-7f1c"
	url := startRouter(t)
	var logs lockedBuf
	callee, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	type state struct{ Token string }
	_, err = callee.Register(ctx, "com.example.boom", func(context.Context, *Invocation) (*Result, error) {
		panic(fmt.Sprintf("bad state %+v", state{Token: secret}))
	}, nil)
	noErr(t, "Register", err)
	_, err = caller.Call(ctx, "com.example.boom", nil, nil, nil)
	e := wampErr(t, err, URIRuntimeError)
	if got := fmt.Sprintf("%v %v %v %v", e.Error(), e.Args, e.Kwargs, e.Details); strings.Contains(got, secret) {
		t.Fatalf("the caller got the callee's panic value: %s", got)
	}
	if !strings.Contains(logs.String(), secret) {
		t.Fatalf("the panic's value is not in the callee's ERROR log:\n%s", logs.String())
	}
}
