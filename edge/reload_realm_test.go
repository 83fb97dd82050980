package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestReloadAddedRealmMeshed: a realm a reload adds on two nodes is
// meshed as those they started with: a callee of it on A is called from B.
func TestReloadAddedRealmMeshed(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	for _, tn := range ns {
		if err := tn.r.Reload([]route.RealmConfig{{Name: "realm1"}, {Name: "realm2"}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t, 30*time.Second)
	dial := func(tn *tnode) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: tn.ws(), Realm: "realm2", Serializer: proto.JSON})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	callee := dial(a)
	if _, err := callee.Register(ctx, "com.r2", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"A"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	callUntil(t, dial(b), "com.r2", nil)
}

// TestReloadRemovedRealmWithdrawn: a realm a reload removes on A takes
// its callee's registration off the mesh (B's caller is told
// no_such_procedure), and once the realm is back a new callee on A is
// called from B.
func TestReloadRemovedRealmWithdrawn(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	reg := func(proc string) {
		callee := a.dial(a.ws(), proto.JSON)
		if _, err := callee.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"A"}}, nil
		}, &client.RegisterOptions{Invoke: "single"}); err != nil {
			t.Fatal(err)
		}
	}
	reg("com.r1")
	caller := b.dial(b.rs(), proto.MsgPack)
	callUntil(t, caller, "com.r1", nil)
	if err := a.r.Reload([]route.RealmConfig{{Name: "realm9"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		_, err := caller.Call(ctx, "com.r1", nil, nil, nil)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchProcedure {
			return nil
		}
		return fmt.Errorf("com.r1 from B after A removed realm1: %v", err)
	})
	if err := a.r.Reload([]route.RealmConfig{{Name: "realm1"}}); err != nil {
		t.Fatal(err)
	}
	reg("com.r1")
	callUntil(t, caller, "com.r1", nil)
}

// TestReloadDuringDrainRemovedRealm: a reload during A's drain that
// removes the realm of A's callee, with B's call in progress on it, ends
// that call (ERROR canceled at B's caller) and the drain with it.
func TestReloadDuringDrainRemovedRealm(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	calleeA := a.dial(a.ws(), proto.JSON)
	started, _ := gatedProc(ctx, t, calleeA, "com.a.slow", "A")
	caller := b.dial(b.rs(), proto.MsgPack)
	callUntil(t, caller, "com.a.slow", nil)
	inflight := goCall(caller, "com.a.slow")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach A's callee")
	}
	stopped := startDrain(t, a, 20*time.Second)
	if err := a.r.Reload([]route.RealmConfig{{Name: "realm9"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-inflight:
		var we *client.Error
		if !errors.As(o.err, &we) || we.URI != proto.URICanceled {
			t.Fatalf("B's call in progress when A's reload removed the realm: %v %v, want %s", o.res, o.err, proto.URICanceled)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("B's call got no answer within 15 s of the realm's removal")
	}
	waitStopped(t, stopped, "the realm removed", "the realm's removal")
}
