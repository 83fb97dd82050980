package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation in payload passthru mode (ppt_scheme)
// goes at once to a node with a callee that announced both
// progressive_call_invocations and payload_passthru_mode: the directory
// says how many of a node's callees did, and when the first and last of
// them registered (annexProgPPT, when they are not the same callees as
// those that take progressive invocations). Before, the directory said
// nothing of payload passthru: b's callee, which takes progressive
// invocations but not payload passthru, was picked (first: it registered
// first; roundrobin: every other stream), b refused the stream
// feature_not_supported after its second chunk had gone (too late to
// reroute it), while c's Go client callee could take it.
func TestMeshProgressivePPTPickCapableCallee(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)
	caller := a.dial(a.ws(), proto.JSON)
	// seen waits until a knows nodes other nodes with callees of proc.
	seen := func(proc string, nodes int) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if n := len(a.r.MeshCallees("realm1", proc)); n < nodes {
				return fmt.Errorf("%d of the %d nodes with callees of %s seen on a", n, nodes, proc)
			}
			return nil
		})
	}
	ppt := &client.CallOptions{Options: map[string]any{"ppt_scheme": "x_custom"}}
	for _, policy := range []string{"first", "roundrobin"} {
		proc := "com.progppt." + policy
		p := dialPlainCalleeWith(t, b, map[string]any{"shared_registration": true, "call_canceling": true, "progressive_call_invocations": true})
		p.register(t, proc, policy)
		seen(proc, 1)
		s := c.dial(c.rs(), proto.MsgPack)
		if _, err := s.Register(ctx, proc, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
			n := 1
			for cur := inv; cur.Progress; n++ {
				next, err := cur.Next(ctx)
				if err != nil {
					return nil, err
				}
				cur = next
			}
			return &client.Result{Args: []any{"c1", n}}, nil
		}, &client.RegisterOptions{Invoke: policy}); err != nil {
			t.Fatal(err)
		}
		seen(proc, 2)
		failed, got := 0, map[string]int{}
		const streams = 6
		for range streams {
			name, err := progressiveStreamWith(ctx, caller, proc, ppt)
			if err != nil {
				failed++
				t.Logf("%s: %v", proc, err)
				continue
			}
			got[name]++
		}
		if failed > 0 || got["c1"] != streams || p.invocations.Load() != 0 {
			t.Errorf("%s: %d of %d progressive streams in payload passthru mode failed, the others served by %v (b's callee got %d invocations): want all %d by c1", proc, failed, streams, got, p.invocations.Load(), streams)
		}
	}
	waitNothingPending(t, nodes...)
}
