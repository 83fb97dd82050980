package edge

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// clusterConf is cluster with each router's configuration changed by
// conf.
func clusterConf(t *testing.T, conf func(*route.Config), names ...string) []*tnode {
	t.Helper()
	ports := make([]string, len(names))
	for i := range names {
		ports[i] = edgetest.FreeAddr(t)
	}
	var nodes []*tnode
	for i, name := range names {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "nats://"+p)
			}
		}
		listen := ports[i]
		nodes = append(nodes, startNodeConf(t, name, conf, func(o *Options) {
			o.Cluster.Listen = listen
			o.Cluster.Routes = routes
		}))
	}
	waitMesh(t, nodes...)
	return nodes
}

// One client (here every session from 127.0.0.1, one anonymous client
// address) may hold at most a quarter of mesh.max_invocations in calls to
// other nodes' callees, as it may hold a quarter of
// calls_in_flight_total: a node's invocations of remote callers are one
// budget for the whole mesh. Before, only a session's calls_in_flight
// (mesh.calls_in_flight) bounded them, so one client's 16 sessions at the
// defaults (4 here) filled the callee node's max_invocations with calls
// to a callee of its own that never answers, and every call from every
// other node to any callee there was refused wamp.error.unavailable.
func TestMeshInvocationsOneClientShare(t *testing.T) {
	t.Parallel()
	const invs, perSession, sessions = 64, 16, 4 // the sessions fill invs
	nodes := clusterConf(t, func(c *route.Config) {
		c.MaxMeshInvocations = invs
		c.MaxMeshCalls = perSession
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t, 60*time.Second)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var held atomic.Int64
	hold := b.dial(b.rs(), proto.MsgPack)
	if _, err := hold.Register(ctx, "com.hold", func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		held.Add(1)
		select {
		case <-ctx.Done():
		case <-release:
		}
		return &client.Result{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.dial(b.ws(), proto.JSON).Register(ctx, "com.ok", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"ok"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		for _, n := range []*tnode{a, c} {
			for _, p := range []string{"com.hold", "com.ok"} {
				if len(n.r.MeshCallees("realm1", p)) == 0 {
					return fmt.Errorf("%s does not see %s yet", n.name, p)
				}
			}
		}
		return nil
	})
	// One client's sessions on a, each at its calls_in_flight.
	var refused atomic.Int64
	for range sessions {
		s := a.dial(a.rs(), proto.MsgPack)
		for range perSession {
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if _, err := s.Call(cctx, "com.hold", nil, nil, nil); err != nil {
					refused.Add(1)
				}
			}()
		}
	}
	eventually(t, 20*time.Second, func() error {
		if h, r := held.Load(), refused.Load(); h+r != sessions*perSession {
			return fmt.Errorf("of %d calls, %d reached the callee and %d were refused", sessions*perSession, h, r)
		}
		return nil
	})
	if h := held.Load(); h > invs/4 {
		t.Errorf("one client holds %d invocations on b, more than a quarter of its max_invocations %d", h, invs)
	}
	// Another node's caller still reaches b's callees.
	res, err := c.dial(c.ws(), proto.JSON).Call(ctx, "com.ok", nil, nil, nil)
	if err != nil {
		t.Fatalf("a call from c to b's other callee, with one client of a holding %d invocations on b: %v", held.Load(), err)
	}
	if len(res.Args) != 1 || res.Args[0] != "ok" {
		t.Fatalf("result %v", res.Args)
	}
}
