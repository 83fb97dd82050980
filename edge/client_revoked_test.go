package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A Client standing by for a single procedure on the hub takes the claim
// over while the edge that held it is cut off; on heal the edge's
// registration (made first) wins and the hub revokes the Client's
// (UNREGISTERED, procedure_already_exists). The Client must go on
// standing by, as it does after a reconnection: once the edge's callee
// leaves, it provides the procedure again. Before, the revoked
// registration was never made again on that session (a client without
// registration_revocation, killed instead, reconnected and retried): the
// procedure stayed unprovided for as long as the Client's session lived.
func TestClientRegistrationRevokedOnHealStandsByAgain(t *testing.T) {
	t.Parallel()
	fast := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 150*time.Millisecond, 1500*time.Millisecond
		o.PingInterval, o.MaxPingsOut = 300*time.Millisecond, 2
	}
	hub, edge, px := hubAndEdgeWith(t, fast)
	waitClaims(t, 15*time.Second, hub, edge)
	ctx := ctxT(t, 60*time.Second)
	which := func(name string) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{name}}, nil
		}
	}
	edgeCallee := edge.dial(edge.rs(), proto.JSON)
	if _, err := edgeCallee.Register(ctx, "com.held", which("edge"), nil); err != nil {
		t.Fatal(err)
	}

	px.cut()
	eventually(t, 10*time.Second, func() error {
		if len(hub.n.Peers()) != 0 || len(edge.n.Peers()) != 0 {
			return fmt.Errorf("hub sees %v, edge sees %v", hub.n.Peers(), edge.n.Peers())
		}
		return nil
	})
	cl, err := client.Connect(ctx, client.Config{URL: hub.ws(), Realm: "realm1", Serializer: proto.JSON},
		client.ReconnectConfig{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Taken over in the store, not provisionally (as in
	// TestClaimTakenOverDuringPartitionAssertedAgainOnHeal).
	eventually(t, 15*time.Second, func() error {
		before := hub.n.Stats().ClaimsProvisional.Load()
		if err := cl.Register(ctx, "com.held", which("hub"), nil); err != nil {
			t.Fatalf("the hub could not take over the claim of the edge it took for dead: %v", err)
		}
		if hub.n.Stats().ClaimsProvisional.Load() != before {
			if err := cl.Unregister(ctx, "com.held"); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("the hub's claim was provisional")
		}
		return nil
	})
	s, err := cl.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}

	px.restore()
	waitMesh(t, hub, edge)
	revoked := hub.r.MeshStats().Revoked.Load
	eventually(t, 10*time.Second, func() error {
		if revoked() == 0 {
			return fmt.Errorf("the hub revoked nothing")
		}
		return nil
	})
	// The edge's callee leaves: the Client, standing by, takes over.
	edgeCallee.Close()
	caller := hub.dial(hub.ws(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		r, err := caller.Call(ctx, "com.held", nil, nil, nil)
		if err != nil {
			return err
		}
		if len(r.Args) != 1 || r.Args[0] != "hub" {
			return fmt.Errorf("answered by %v", r.Args)
		}
		return nil
	})
	if now, _ := cl.Session(ctx); now != s {
		t.Fatal("the Client's session was lost: the test means its registration to come back on the same session")
	}
}
