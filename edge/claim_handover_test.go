package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSingleRegistrationHandover: a callee gives a single registration
// up on one node (UNREGISTERED), and another callee registers it on
// another node right after, as a standby taking over does. The
// REGISTER succeeds every time.
func TestSingleRegistrationHandover(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	waitClaims(t, 20*time.Second, nodes...)
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	h := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	sa := a.dial(a.ws(), proto.JSON)
	sb := b.dial(b.ws(), proto.MsgPack)
	const uri = "com.standby.takeover"
	from, to := sa, sb
	reg, err := from.Register(ctx, uri, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	failed := 0
	for i := range rounds {
		if err := from.Unregister(ctx, reg); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		reg, err = to.Register(ctx, uri, h, nil)
		if err != nil {
			failed++
			t.Logf("round %d: REGISTER right after the other node's UNREGISTERED: %v (%v)", i, err, time.Since(start))
			// Let the release land, then go on from the same side.
			eventually(t, 5*time.Second, func() error {
				var e error
				reg, e = to.Register(ctx, uri, h, nil)
				return e
			})
		}
		from, to = to, from
	}
	if failed > 0 {
		t.Fatalf("%d of %d handovers refused", failed, rounds)
	}
	// After the loop "from" holds it and "to" gave it up last (the sides
	// swap after each round). The last taker serves the procedure mesh-wide, and no node took
	// the handovers for conflicts (the directory's stale entries of the
	// giver are read within the revocation grace).
	sc := nodes[2].dial(nodes[2].ws(), proto.CBOR)
	callUntil(t, sc, uri, nil)
	time.Sleep(1200 * time.Millisecond) // past the revocation grace
	for _, tn := range nodes {
		if n := tn.r.MeshStats().Revoked.Load(); n != 0 {
			t.Errorf("%s revoked %d callees", tn.name, n)
		}
	}
	if _, err := to.Register(ctx, uri, h, nil); wampErr(err) != proto.URIProcedureAlreadyExists {
		t.Fatalf("the giver registered the procedure the taker holds: %v", err)
	}
	if _, err := sc.Call(ctx, uri, nil, nil, nil); err != nil {
		t.Fatalf("call after the handovers: %v", err)
	}
}
