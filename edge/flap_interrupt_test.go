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

// A call from an edge's caller to a hub's callee that waits for its
// INTERRUPT, timed out at the edge while the uplink is cut (cut and
// restored within the peer timeout: neither node takes the other for
// dead), is ended on the hub too: the edge's interrupt, sent at the
// timeout, was lost with the link (NATS is at most once), and the hub,
// which applied no bound of its own to calls from other nodes, held the
// invocation (one of its max_invocations) and its callee waited, for
// ever (seen: 3 s after the heal, MeshPending 1, the callee never
// interrupted). Now the hub ends it a grace past the caller's timeout,
// interrupting its callee.
func TestLeafFlapLostInterruptEndsHeldInvocation(t *testing.T) {
	t.Parallel()
	hub, edge := flapLostInterrupt(t, 6*time.Second, &client.CallOptions{Timeout: 1500 * time.Millisecond}, func(_ func(), done <-chan error) {
		// the interrupt sent at the timeout is lost
		if err := <-done; wampErr(err) != proto.URITimeout {
			t.Fatalf("the caller got %v, want %s", err, proto.URITimeout)
		}
	}, 5*time.Second)
	if lost := hub.n.Stats().PeersLost.Load() + edge.n.Stats().PeersLost.Load(); lost == 0 && hub.r.MeshStats().InvocationsExpired.Load() != 1 {
		t.Fatalf("the hub counted %d invocations expired, want 1", hub.r.MeshStats().InvocationsExpired.Load())
	}
}

// flapLostInterrupt runs a call with opts from an edge's caller to a hub's
// callee that waits for its INTERRUPT, cuts the uplink once the callee has
// it, lets ended end the call at the edge (cancel cancels the caller's
// context; done is the caller's answer), restores the link within the peer
// timeout and wants the hub's callee interrupted within heal after it and
// nothing held on the hub from other nodes.
func flapLostInterrupt(t *testing.T, peerTimeout time.Duration, opts *client.CallOptions, ended func(cancel func(), done <-chan error), heal time.Duration) (hub, edge *tnode) {
	hub, edge, px := hubAndEdgeWith(t, func(o *Options) { o.PeerTimeout = peerTimeout })
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
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(cctx, "hub.block", nil, nil, opts)
		done <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if running.Load() == 0 {
			return errors.New("the hub's callee has not got the call")
		}
		return nil
	})
	px.cut()
	ended(cancel, done) // the interrupt it sends is lost with the link
	time.Sleep(300 * time.Millisecond)
	px.restore()
	waitMesh(t, hub, edge)
	select {
	case cause := <-interrupted:
		if !errors.Is(cause, client.ErrInterrupted) {
			t.Fatalf("the hub's callee ended by %v, want an INTERRUPT", cause)
		}
	case <-time.After(heal):
		lost := hub.n.Stats().PeersLost.Load() + edge.n.Stats().PeersLost.Load()
		t.Fatalf("the hub's callee was not interrupted %v after the heal (hub MeshPending %d, peers lost %d)", heal, hub.r.MeshPending(), lost)
	}
	eventually(t, 5*time.Second, func() error {
		if p := hub.r.MeshPending(); p != 0 {
			return fmt.Errorf("the hub holds %d invocations from other nodes", p)
		}
		return nil
	})
	return hub, edge
}
