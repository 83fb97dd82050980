package edge

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A call without a timeout from an edge's caller to a hub's callee that
// waits for its INTERRUPT, canceled (killnowait) at the edge while the
// uplink is cut (and restored within the peer timeout), is ended on the
// hub too: its interrupt was lost with the link, and the hub, which
// bounds only calls with a timeout, held the invocation and its callee
// waited for ever. The edge sends the interrupt again past the peer
// timeout and a second.
func TestLeafFlapLostInterruptOfUntimedCallSentAgain(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.PeerTimeout = 3 * time.Second })
	ctx := ctxT(t, 60*time.Second)
	var running atomic.Int64
	interrupted := make(chan error, 1)
	callee := hub.dial(hub.ws(), proto.MsgPack)
	if _, err := callee.Register(ctx, "hub.block", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		running.Add(1)
		<-ctx.Done()
		interrupted <- context.Cause(ctx)
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := edge.dial(edge.rs(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		res, err := caller.Call(ctx, "wamp.registration.lookup", []any{"hub.block"}, nil, nil)
		if err != nil {
			return err
		}
		if len(res.Args) == 0 || res.Args[0] == nil {
			return errors.New("hub.block not in the edge's directory yet")
		}
		return nil
	})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(cctx, "hub.block", nil, nil, &client.CallOptions{CancelMode: "killnowait"})
		done <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if running.Load() == 0 {
			return errors.New("the hub's callee has not got the call")
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
	case <-time.After(8 * time.Second):
		lost := hub.n.Stats().PeersLost.Load() + edge.n.Stats().PeersLost.Load()
		t.Fatalf("the hub's callee was not interrupted 8 s after the heal (hub MeshPending %d, peers lost %d)", hub.r.MeshPending(), lost)
	}
	eventually(t, 5*time.Second, func() error {
		if p := hub.r.MeshPending(); p != 0 {
			return fmt.Errorf("the hub holds %d invocations from other nodes", p)
		}
		return nil
	})
}
