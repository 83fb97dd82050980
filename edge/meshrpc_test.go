package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A progressive result the callee's node cannot send to the caller's
// node (here larger than its whole outbound queue, as a full queue
// refuses any) fails the call at its caller, as it did; and the callee,
// still streaming, is interrupted and its invocation forgotten on its
// node, as on one node when a progressive result cannot reach its caller.
// Before, the callee's node kept the invocation (counted in
// max_invocations) and the callee streamed on, every result dropped at
// the caller's node, until it ended the stream by itself: an endless
// stream, never.
func TestMeshProgressiveResultRefusedInterruptsCallee(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) { o.MaxOutbound = 1 << 20 }, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	callee := b.dial(b.rs(), proto.MsgPack)
	interrupted := make(chan error, 1)
	_, err := callee.Register(ctx, "com.stream", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) == 0 {
			return &client.Result{}, nil // the directory check below
		}
		if err := inv.SendProgress([]any{"small"}, nil); err != nil {
			return nil, err
		}
		// Larger than the node's whole outbound queue (1 MiB): the mesh
		// refuses it.
		if err := inv.SendProgress([]any{strings.Repeat("x", 3<<19)}, nil); err != nil {
			return nil, err
		}
		// An endless stream, until interrupted.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		stop := time.After(3 * time.Second)
		for {
			select {
			case <-ctx.Done():
				interrupted <- context.Cause(ctx)
				return nil, ctx.Err()
			case <-stop:
				interrupted <- errors.New("never interrupted in 3 s")
				return &client.Result{Args: []any{"ended by itself"}}, nil
			case <-tick.C:
				if err := inv.SendProgress([]any{"more"}, nil); err != nil {
					interrupted <- err
					return nil, err
				}
			}
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.stream", nil)
	var prog int
	_, err = caller.Call(ctx, "com.stream", []any{"go"}, nil, &client.CallOptions{OnProgress: func(*client.Result) { prog++ }})
	if u := wampErr(err); u != proto.URIUnavailable && u != proto.URIPayloadSizeExceeded {
		t.Fatalf("the call: %v (after %d progressive results), want unavailable or payload_size_exceeded", err, prog)
	}
	select {
	case cause := <-interrupted:
		if !errors.Is(cause, client.ErrInterrupted) {
			t.Fatalf("the callee, streaming on: %v; want it interrupted", cause)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the callee's handler did not end")
	}
	waitNothingPending(t, nodes...)
}
