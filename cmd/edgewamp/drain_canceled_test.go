package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSIGTERMAnswersCallsLeftCanceled: calls to a callee that never
// answers, from callers on several connections (so on both event loops),
// are still in progress at the drain's deadline; each caller gets ERROR
// wamp.error.canceled ("the callee's router shut down while the call was
// in progress") before its GOODBYE, as README promises. Before, the
// shards said GOODBYE in no order: a caller whose GOODBYE came before its
// callee's ended the call with the session (the Go client's Call:
// "session lost: wamp.close.system_shutdown"; a client that does not fail
// its pending calls at a GOODBYE kept waiting), and a callee's ERROR from
// another loop came after the caller's GOODBYE and was dropped.
func TestSIGTERMAnswersCallsLeftCanceled(t *testing.T) {
	t.Parallel()
	r := startRouter(t, "-config", writeConfig(t, "listeners: [{address: 127.0.0.1:0}]\nrealms: [{name: realm1}]\nshutdown: {drain_timeout: 1s}\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := r.dial("rs://"+r.addr, proto.MsgPack)
	defer callee.Close()
	held := make(chan struct{}, 16)
	if _, err := callee.Register(ctx, "com.never", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		held <- struct{}{}
		<-ictx.Done()
		return nil, ictx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	const callers = 6
	errs := make(chan error, callers)
	for i := range callers {
		ser := proto.JSON
		if i%2 == 1 {
			ser = proto.CBOR
		}
		c := r.dial("ws://"+r.addr+"/ws", ser)
		defer c.Close()
		go func() {
			_, err := c.Call(ctx, "com.never", nil, nil, &client.CallOptions{ReceiveProgress: i%3 == 0})
			errs <- err
		}()
	}
	for range callers {
		select {
		case <-held:
		case <-ctx.Done():
			t.Fatalf("the calls did not reach the callee\n%s", r.logs())
		}
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range callers {
		err := <-errs
		var e *client.Error
		if wampURI(err) != proto.URICanceled || !errors.As(err, &e) || len(e.Args) == 0 ||
			!strings.Contains(fmt.Sprint(e.Args[0]), "router shut down") {
			t.Errorf("a call in progress at the drain's deadline: %v, want ERROR %s saying the router shut down", err, proto.URICanceled)
		}
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, r.logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM\n%s", r.logs())
	}
}
