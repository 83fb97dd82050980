package edge

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A MsgPack caller's NaN, which JSON cannot carry, to a shared
// registration whose callees on another node are JSON ones: that node
// refuses it (invalid_argument, for the caller's node to reroute) and
// says it has no callee left that could take it, so the caller's node
// offers it there once, not once per JSON callee. Before, noSer did not
// cross the mesh: the caller's node offered the call to that node again
// for each of its JSON callees, each converting the payload and failing
// alike, before the MsgPack callee on a third node got it.
func TestMeshUnconvertibleCallNotRetriedPerCallee(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"first", "roundrobin"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			nodes := cluster(t, "a", "b", "c")
			a, b, c := nodes[0], nodes[1], nodes[2]
			ctx := ctxT(t, 60*time.Second)
			var refusedHit atomic.Int32
			for i := range 4 {
				s := b.dial(b.ws(), proto.JSON)
				if _, err := s.Register(ctx, "com.nan", func(context.Context, *client.Invocation) (*client.Result, error) {
					refusedHit.Add(1)
					return &client.Result{}, nil
				}, &client.RegisterOptions{Invoke: policy}); err != nil {
					t.Fatal(err)
				}
				_ = i
			}
			eventually(t, 10*time.Second, func() error {
				if n := len(a.r.MeshCallees("realm1", "com.nan")); n != 1 {
					return fmt.Errorf("A sees %d nodes with callees", n)
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond) // later than B's callees, for first
			mp := c.dial(c.ws(), proto.MsgPack)
			if _, err := mp.Register(ctx, "com.nan", func(context.Context, *client.Invocation) (*client.Result, error) {
				return &client.Result{Args: []any{"c"}}, nil
			}, &client.RegisterOptions{Invoke: policy}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, func() error {
				if n := len(a.r.MeshCallees("realm1", "com.nan")); n != 2 {
					return fmt.Errorf("A sees %d nodes with callees", n)
				}
				return nil
			})
			caller := a.dial(a.ws(), proto.MsgPack)
			const calls = 4
			for i := range calls {
				res, err := caller.Call(ctx, "com.nan", []any{math.NaN()}, nil, nil)
				if err != nil || len(res.Args) != 1 || res.Args[0] != "c" {
					t.Fatalf("call %d: %v %v", i, res, err)
				}
			}
			st := a.r.Stats()
			t.Logf("%d calls: rerouted %d times on A; JSON callees invoked %d", calls, st.CallsRerouted, refusedHit.Load())
			if st.CallsRerouted > calls || refusedHit.Load() != 0 {
				t.Fatalf("%d calls of a NaN rerouted %d times (want at most once each: B's JSON callees are tried once as one)", calls, st.CallsRerouted)
			}
			// B counts its refusals (edgewamp_invocations_refused_total{reason="not_convertible"}):
			// one a call that reached it.
			refused := b.r.Stats().CallsRefusedNotConvertible
			t.Logf("B counted %d refusals for its callees' serializer", refused)
			if refused != st.CallsRerouted || policy == "first" && refused != calls {
				t.Fatalf("B counted %d calls refused for its callees' serializer, %d rerouted from it", refused, st.CallsRerouted)
			}
		})
	}
}
