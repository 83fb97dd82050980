package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestMeshRegisterPolicyConflict: on a mesh, a REGISTER of a procedure
// that another node's callees hold shared with another invocation policy
// is refused wamp.error.procedure_exists_with_different_invocation_policy
// (before, procedure_already_exists), a single REGISTER included, while
// any REGISTER of a procedure another node holds single is still refused
// procedure_already_exists. Once the other policy's callees left, the
// procedure takes the new policy. Real clients on two nodes of a NATS
// cluster.
func TestMeshRegisterPolicyConflict(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	waitClaims(t, 15*time.Second, nodes...)
	ctx := ctxT(t, 30*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	holder := b.dial(b.ws(), proto.JSON)
	rr, err := holder.Register(ctx, "com.shared", h, &client.RegisterOptions{Invoke: "roundrobin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Register(ctx, "com.one", h, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		for _, p := range []string{"com.shared", "com.one"} {
			if n := len(a.r.MeshCallees("realm1", p)); n != 1 {
				return fmt.Errorf("A sees %d nodes with callees of %s", n, p)
			}
		}
		return nil
	})
	s := a.dial(a.rs(), proto.CBOR)
	for _, tc := range []struct {
		proc, invoke, want string
	}{
		{"com.shared", "random", proto.URIProcedureExistsInvocationPolicyConflict},
		{"com.shared", "single", proto.URIProcedureExistsInvocationPolicyConflict},
		{"com.one", "single", proto.URIProcedureAlreadyExists},
		{"com.one", "first", proto.URIProcedureAlreadyExists},
	} {
		if _, err := s.Register(ctx, tc.proc, h, &client.RegisterOptions{Invoke: tc.invoke}); wampErr(err) != tc.want {
			t.Errorf("REGISTER %s %s on the other node: %v, want %s", tc.proc, tc.invoke, err, tc.want)
		}
	}
	// The roundrobin callees gone, the procedure is free for another
	// policy (what a standby waits for).
	if err := holder.Unregister(ctx, rr); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		_, err := s.Register(ctx, "com.shared", h, &client.RegisterOptions{Invoke: "random"})
		return err
	})
}
