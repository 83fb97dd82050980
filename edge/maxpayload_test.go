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

// A node joined to a NATS deployment (nats_url) whose max_payload is
// NATS's default, 1 MiB: a call to another node's callee whose envelope
// is larger than that cannot cross. It was queued all the same, nats.go
// refused it in the sender (counted as publish_error), and the caller,
// without a timeout, waited for ever.
func TestCallLargerThanNATSMaxPayloadFails(t *testing.T) {
	t.Parallel()
	url := jsServer(t) // max_payload: NATS's default, 1 MiB
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	b := startNode(t, "b", func(o *Options) { o.NatsURL = url })
	waitMesh(t, a, b)
	ctx := ctxT(t, 20*time.Second)
	callee := b.dial(b.rs(), proto.JSON)
	if _, err := callee.Register(ctx, "com.big", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{len(inv.Args)}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.big", []any{"small"})
	big := strings.Repeat("x", 3<<19) // 1.5 MiB
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := caller.Call(cctx, "com.big", []any{big}, nil, nil)
	var werr *client.Error
	if !errors.As(err, &werr) || werr.URI != proto.URIPayloadSizeExceeded || cctx.Err() != nil {
		// The client cancels the call when its context ends: canceled.
		t.Fatalf("a call of 1.5 MiB across a mesh whose NATS takes 1 MiB: %v, want %s at once", err, proto.URIPayloadSizeExceeded)
	}
	if n := a.n.Stats().TooLarge.Load(); n == 0 {
		t.Error("the refusal is not counted (Stats.TooLarge)")
	}
	// The mesh still carries the calls that fit.
	if _, err := caller.Call(ctx, "com.big", []any{"small"}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// The same for a result: a YIELD larger than the NATS server takes, for a
// caller on another node, was dropped on the callee's node (its Send
// refused, counted), and the caller waited for ever. It now gets
// wamp.error.payload_size_exceeded, as a caller on one node does for a
// result too large for it.
func TestResultLargerThanNATSMaxPayloadFails(t *testing.T) {
	t.Parallel()
	url := jsServer(t) // max_payload: NATS's default, 1 MiB
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	b := startNode(t, "b", func(o *Options) { o.NatsURL = url })
	waitMesh(t, a, b)
	ctx := ctxT(t, 20*time.Second)
	big := strings.Repeat("x", 3<<19) // 1.5 MiB
	callee := b.dial(b.rs(), proto.JSON)
	if _, err := callee.Register(ctx, "com.big", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		if len(inv.Args) == 1 && inv.Args[0] == "big" {
			return &client.Result{Args: []any{big}}, nil
		}
		return &client.Result{Args: []any{"small"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.big", []any{"small"})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := caller.Call(cctx, "com.big", []any{"big"}, nil, nil)
	var werr *client.Error
	if !errors.As(err, &werr) || werr.URI != proto.URIPayloadSizeExceeded || cctx.Err() != nil {
		t.Fatalf("a result of 1.5 MiB across a mesh whose NATS takes 1 MiB: %v, want %s at once", err, proto.URIPayloadSizeExceeded)
	}
	if _, err := caller.Call(ctx, "com.big", []any{"small"}, nil, nil); err != nil {
		t.Fatal(err)
	}
}
