package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// An edge node joined to a hub through a leaf-node link that runs through
// a TCP proxy the test can cut.
func TestLeafEdgeAndHub(t *testing.T) {
	t.Parallel()
	hub, edge, px := hubAndEdge(t)
	ctx := ctxT(t, 60*time.Second)

	// The edge's clients call procedures on the hub...
	hubCallee := hub.dial(hub.ws(), proto.MsgPack)
	if _, err := hubCallee.Register(ctx, "hub.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: append([]any{"hub"}, inv.Args...)}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	edgeCaller := edge.dial(edge.rs(), proto.CBOR)
	if res := callUntil(t, edgeCaller, "hub.echo", []any{1}); res.Args[0] != "hub" {
		t.Fatalf("edge -> hub: %v", res.Args)
	}
	// ...and the hub's clients call procedures on the edge and receive
	// its events.
	edgeCallee := edge.dial(edge.ws(), proto.JSON)
	if _, err := edgeCallee.Register(ctx, "edge.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: append([]any{"edge"}, inv.Args...)}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	hubCaller := hub.dial(hub.ws(), proto.JSON)
	if res := callUntil(t, hubCaller, "edge.echo", []any{2}); res.Args[0] != "edge" {
		t.Fatalf("hub -> edge: %v", res.Args)
	}
	events := make(chan *client.Event, 64)
	if _, err := hubCaller.Subscribe(ctx, "edge.telemetry", func(e *client.Event) { events <- e }, nil); err != nil {
		t.Fatal(err)
	}
	edgePub := edge.dial(edge.ws(), proto.MsgPack)
	waitEvent(t, edgePub, "edge.telemetry", events)

	// Exclusive registrations work from the edge through the hub's claim
	// store.
	eventually(t, 15*time.Second, func() error {
		if !edge.n.ClaimsReady() {
			return errors.New("the edge does not reach the hub's claim store")
		}
		return nil
	})
	if _, err := edgeCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := hubCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the hub registered a single procedure the edge holds: %v", err)
	}

	// Cut the uplink: the hub soon forgets the edge, and the edge keeps
	// serving its own clients, RPC and pubsub.
	px.cut()
	cutAt := time.Now()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 0 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	t.Logf("uplink cut detected by both sides after %v", time.Since(cutAt).Round(time.Millisecond))
	if _, err := hubCaller.Call(ctx, "edge.echo", nil, nil, nil); wampErr(err) != proto.URINoSuchProcedure {
		t.Fatalf("hub -> cut-off edge: %v", err)
	}
	localCaller := edge.dial(edge.ws(), proto.CBOR)
	if res, err := localCaller.Call(ctx, "edge.echo", []any{3}, nil, nil); err != nil || res.Args[0] != "edge" {
		t.Fatalf("local RPC on the cut-off edge: %v %v", res, err)
	}
	localEvents := make(chan *client.Event, 64)
	if _, err := localCaller.Subscribe(ctx, "edge.local", func(e *client.Event) { localEvents <- e }, nil); err != nil {
		t.Fatal(err)
	}
	if err := edgePub.Publish(ctx, "edge.local", []any{"x"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-localEvents:
	case <-time.After(5 * time.Second):
		t.Fatal("local pubsub on the cut-off edge")
	}
	// Both sides register the same single procedure during the partition:
	// the hub first (its claim store answers), then the edge (which cannot
	// reach the store and accepts it provisionally).
	which := func(name string) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}
	}
	hubReg, err := hubCallee.Register(ctx, "com.both", which("hub"), nil)
	if err != nil {
		t.Fatal(err)
	}
	edgeReg, err := edgeCallee.Register(ctx, "com.both", which("edge"), nil)
	if err != nil {
		t.Fatalf("the cut-off edge could not register a single procedure: %v", err)
	}
	if edge.n.Stats().ClaimsProvisional.Load() == 0 {
		t.Fatal("the edge's claim was not provisional")
	}

	// Restore it: routing across resumes by itself.
	px.restore()
	waitMesh(t, hub, edge)
	if res := callUntil(t, hubCaller, "edge.echo", []any{4}); res.Args[0] != "edge" {
		t.Fatalf("hub -> edge after heal: %v", res.Args)
	}
	if res := callUntil(t, edgeCaller, "hub.echo", []any{5}); res.Args[0] != "hub" {
		t.Fatalf("edge -> hub after heal: %v", res.Args)
	}
	waitEvent(t, edgePub, "edge.telemetry", events)
	// The duplicate single registration made during the partition is
	// settled: the hub's (made first) stays, the edge's is revoked, and
	// both nodes route com.both to the hub.
	eventually(t, 10*time.Second, func() error {
		if edgeReg.Active() || !hubReg.Active() {
			return fmt.Errorf("edge's registration active %v, hub's %v", edgeReg.Active(), hubReg.Active())
		}
		return nil
	})
	for _, s := range []*client.Session{hubCaller, edgeCaller} {
		if res := callUntil(t, s, "com.both", nil); res.Args[0] != "hub" {
			t.Fatalf("com.both answered by %v after heal", res.Args[0])
		}
	}
	// No duplicate single registration is left standing after the heal.
	if _, err := hubCallee.Register(ctx, "com.one", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("after heal, the hub registered a single procedure the edge holds: %v", err)
	}
}

// waitEvent publishes on topic from pub until an event arrives on ch.
func waitEvent(t *testing.T, pub *client.Session, topic string, ch chan *client.Event) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if err := pub.Publish(context.Background(), topic, []any{"probe"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			return err
		}
		select {
		case <-ch:
			for len(ch) > 0 {
				<-ch
			}
			return nil
		case <-time.After(100 * time.Millisecond):
			return errors.New("no event")
		}
	})
}
