package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// An edge box started under the name of a live hub ("hub", a clone's
// host name) whose client registers a single procedure the hub's client
// holds, before the box has heard the hub's heartbeat: the claim, under
// the box's own name from another boot, was taken for the box's earlier
// life's and taken over at once, and both nodes then answered the
// procedure (the hub's heartbeat, which tells a live twin, comes up to a
// heartbeat later). Now the box asks the mesh whether that life still
// runs (twinAsk) and is refused while it does. A node restarted after a
// crash (its earlier life gone, nobody to answer) still takes its claims
// over at once: measured, REGISTERED and callable from the hub.
func TestTwinStartedUnderLiveNameRefusedItsSingle(t *testing.T) {
	t.Parallel()
	leafAddr := edgetest.FreeAddr(t)
	// A slow heartbeat on the hub: its live twin is not heard before
	// the REGISTER, as with any heartbeat a REGISTER can beat.
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen = leafAddr
		o.Heartbeat, o.PeerTimeout = 2*time.Second, 6*time.Second
	})
	waitClaims(t, 20*time.Second, hub)
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"hub"}}, nil
	}
	if _, err := hub.dial(hub.ws(), proto.JSON).Register(ctx, "p.hub", h, nil); err != nil {
		t.Fatal(err)
	}
	box := startNode(t, "hub", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitClaims(t, 20*time.Second, box)
	_, err := box.dial(box.ws(), proto.JSON).Register(ctx, "p.hub", h, nil)
	if wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("a box under the live hub's name registering the hub's single procedure: %v, want %s (box: peers same name %d, claims refused %d)",
			err, proto.URIProcedureAlreadyExists, box.n.Stats().PeersSameName.Load(), box.n.Stats().ClaimsRefused.Load())
	}
	box.stop()

	// An ordinary restart: a box "e1" holding p.e1 is killed (nothing
	// given back) and started again under its name at once.
	e1 := startNode(t, "e1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	waitMesh(t, hub, e1)
	waitClaims(t, 20*time.Second, e1)
	if _, err := e1.dial(e1.ws(), proto.JSON).Register(ctx, "p.e1", h, nil); err != nil {
		t.Fatal(err)
	}
	killNode(e1)
	started := time.Now()
	e1 = startNode(t, "e1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + leafAddr} })
	s := e1.dial(e1.ws(), proto.JSON)
	var registered time.Time
	for {
		if _, err := s.Register(ctx, "p.e1", h, nil); err == nil {
			registered = time.Now()
			break
		} else if time.Since(started) > 10*time.Second {
			t.Fatalf("the restarted e1 registering its earlier life's single procedure: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	caller := hub.dial(hub.rs(), proto.MsgPack)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := caller.Call(cctx, "p.e1", nil, nil, nil)
		cancel()
		if err == nil {
			break
		}
		if time.Since(registered) > 2*time.Second {
			t.Fatalf("p.e1 not callable from the hub 2 s after the restarted e1's REGISTERED: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("restart: REGISTERED %v after the start, callable from the hub %v after REGISTERED",
		registered.Sub(started).Round(time.Millisecond), time.Since(registered).Round(time.Millisecond))
}
