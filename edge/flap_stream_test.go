package edge

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A hub's callee streaming progressive results to an edge's caller whose
// call (without a timeout) ended at the edge while the uplink was cut
// (cut and restored within the peer timeout) is interrupted once its
// results reach the edge again: the edge's interrupt was lost with the
// link, and the edge dropped each later result of the call it no longer
// had without a word, so the callee streamed on across the uplink, the
// hub holding the invocation, for ever (seen: 3 s after the heal, the
// callee still streaming, ~150 results dropped at the edge, MeshPending
// 1 on the hub). Now a progressive result of a call the caller's node no
// longer has is answered by an interrupt (killnowait).
func TestLeafFlapStrayProgressInterruptsCallee(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.PeerTimeout = 6 * time.Second })
	ctx := ctxT(t, 60*time.Second)
	var sent atomic.Int64
	interrupted := make(chan error, 1)
	callee := hub.dial(hub.ws(), proto.MsgPack)
	if _, err := callee.Register(ctx, "hub.stream", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for {
			select {
			case <-ctx.Done():
				interrupted <- context.Cause(ctx)
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if err := inv.SendProgress([]any{sent.Add(1)}, nil); err != nil {
				interrupted <- err
				return nil, err
			}
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := edge.dial(edge.rs(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		res, err := caller.Call(ctx, "wamp.registration.lookup", []any{"hub.stream"}, nil, nil)
		if err != nil {
			return err
		}
		if len(res.Args) == 0 || res.Args[0] == nil {
			return errors.New("hub.stream not in the edge's directory yet")
		}
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(cctx, "hub.stream", nil, nil, &client.CallOptions{CancelMode: "killnowait", OnProgress: func(*client.Result) { got.Add(1) }})
		done <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if got.Load() < 3 {
			return errors.New("no progressive results yet")
		}
		return nil
	})
	px.cut()
	cancel() // the interrupt is lost with the link
	if err := <-done; err == nil {
		t.Fatal("the canceled call succeeded")
	}
	time.Sleep(300 * time.Millisecond)
	px.restore()
	waitMesh(t, hub, edge)
	select {
	case cause := <-interrupted:
		if !errors.Is(cause, client.ErrInterrupted) {
			t.Fatalf("the hub's callee ended by %v, want an INTERRUPT", cause)
		}
	case <-time.After(3 * time.Second):
		lost := hub.n.Stats().PeersLost.Load() + edge.n.Stats().PeersLost.Load()
		t.Fatalf("the hub's callee still streams 3 s after the heal (%d results sent, hub MeshPending %d, peers lost %d)", sent.Load(), hub.r.MeshPending(), lost)
	}
	eventually(t, 5*time.Second, func() error {
		if p := hub.r.MeshPending(); p != 0 {
			return errors.New("the hub still holds the invocation")
		}
		return nil
	})
}
