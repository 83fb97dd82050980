package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A node that restarts under its name (a crash, and systemd's restart)
// asks the others for their directories as soon as it hears them, before
// a heartbeat of its new life has reached them (its first goes before
// its routes have formed, the next a heartbeat period later). b answered
// the request, and then took the new life's calls, for the old life's:
// under the old life's handle. When the new life's heartbeat came, b
// took the old life for gone, and with it the new life's calls in
// progress: their callees were interrupted and their callers never
// answered (nor told: b took their node for dead), waiting for their
// timeout, for ever without one. The sync request now carries the
// asker's life (its boot), and b takes the old life for gone when a new
// one asks, as on a heartbeat of a new life, before the new life's calls.
func TestRestartedNodeNewLifeCallsNotTakenForOldLife(t *testing.T) {
	t.Parallel()
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	aOpts := func(newLife bool) func(*Options) {
		return func(o *Options) {
			o.Cluster.Listen, o.Cluster.Routes = pa, []string{"nats://" + pb}
			o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 20*time.Second
			if newLife {
				// Its first heartbeat does not reach b (sent before the
				// routes form); the next comes a period later.
				o.Heartbeat, o.testQuietStart = 500*time.Millisecond, true
			}
		}
	}
	a := startNode(t, "a", aOpts(false))
	b := startNode(t, "b", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes = pb, []string{"nats://" + pa}
		o.Heartbeat, o.PeerTimeout = 100*time.Millisecond, 20*time.Second
	})
	waitMesh(t, a, b)
	ctx := ctxT(t, 60*time.Second)
	got := make(chan struct{}, 8)
	release := make(chan struct{})
	callee := b.dial(b.rs(), proto.MsgPack)
	if _, err := callee.Register(ctx, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		got <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &client.Result{Args: []any{"done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	seen := func(tn *tnode) {
		eventually(t, 10*time.Second, func() error {
			if len(tn.r.MeshCallees("realm1", "com.slow")) == 0 {
				return fmt.Errorf("%s does not see b's callee yet", tn.name)
			}
			return nil
		})
	}
	seen(a)
	killHard(a)
	a = startNode(t, "a", aOpts(true))
	seen(a)
	caller := a.dial(a.ws(), proto.JSON)
	type answer struct {
		res *client.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := caller.Call(cctx, "com.slow", nil, nil, nil)
		done <- answer{res, err}
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the new life's call did not reach b's callee")
	}
	// A heartbeat of the new life reaches b (b takes the old life for
	// gone then, if it has not yet), then the callee answers.
	eventually(t, 10*time.Second, func() error {
		v := b.n.peers.view.Load()
		if v.boots["a"] != a.n.boot || v.sent["a"] == nil || v.sent["a"].Load() == 0 {
			return fmt.Errorf("b has not heard a heartbeat of a's new life")
		}
		return nil
	})
	close(release)
	select {
	case ans := <-done:
		if ans.err != nil {
			t.Fatalf("the new life's call, in progress on b's callee when b heard a's new life: %v", ans.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the new life's call, in progress on b's callee when b heard a's new life, was never answered")
	}
}
