package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatherIncompleteCounted: a meta query whose gather the timeout ends
// before a node answered gives its caller a partial answer, and the node
// counts it (Stats.GathersIncomplete, edgewamp_mesh_gathers_incomplete_total)
// so that an operator can tell a short wamp.session.count from a true
// one; gathers every node answered are not counted. b's control
// dispatcher is stalled, so b answers a's query only after a's
// gather_timeout.
func TestGatherIncompleteCounted(t *testing.T) {
	t.Parallel()
	nodes := clusterWith(t, func(o *Options) {
		o.PeerTimeout = 30 * time.Second // b sends no heartbeat while stalled: a keeps it
		if o.Name == "a" {
			o.GatherTimeout = 400 * time.Millisecond
		}
	}, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)
	sa := a.dial(a.ws(), proto.JSON)
	sb := b.dial(b.rs(), proto.MsgPack) // b's one session
	count := func() int64 {
		t.Helper()
		res, err := sa.Call(ctx, "wamp.session.count", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return toInt(res.Args[0])
	}
	// Both nodes answer: the count is whole (b's session arrives with the
	// directory, so wait for it), and nothing is counted.
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 2 {
			return fmt.Errorf("session.count %d, want 2", n)
		}
		return nil
	})
	if n := a.n.Stats().GathersIncomplete.Load(); n != 0 {
		t.Fatalf("GathersIncomplete %d after whole answers, want 0", n)
	}
	// Each heartbeat says how many peers its sender knows: b knows a, and
	// a has heard from every node b knows.
	eventually(t, 10*time.Second, func() error {
		if k := b.n.peers.view.Load(); len(k.names) != 1 || k.unheard != 0 {
			return fmt.Errorf("b's view %v, unheard %d", k.names, k.unheard)
		}
		if u := a.n.peers.view.Load().unheard; u != 0 {
			return fmt.Errorf("a's view: %d nodes unheard of, want 0", u)
		}
		return nil
	})

	release := stallControl(t, b, nil)
	// A partial answer is counted by the time the caller has it. (Asked
	// again should the first come back otherwise: a CI run under load
	// once read a count of 1 and nothing counted, as when a node asks no
	// other: a failure only if it lasts.)
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 1 {
			return fmt.Errorf("session.count %d with b stalled, want 1 (a's part only)", n)
		}
		if n := a.n.Stats().GathersIncomplete.Load(); n < 1 {
			return fmt.Errorf("GathersIncomplete %d after a partial answer, want at least 1 (peers of a: %v)", n, a.n.Peers())
		}
		return nil
	})

	// b answers again: whole answers, no more counted.
	release()
	eventually(t, 10*time.Second, func() error {
		if n := count(); n != 2 {
			return fmt.Errorf("session.count %d after the stall, want 2", n)
		}
		return nil
	})
	// The late answers of the stalled spell (b answers the queued query
	// once it runs again) may have come while the eventually above made
	// more partial calls; the last, whole one added nothing.
	got := a.n.Stats().GathersIncomplete.Load()
	if n := count(); n != 2 || a.n.Stats().GathersIncomplete.Load() != got {
		t.Fatalf("session.count %d, GathersIncomplete %d → %d after a whole answer", n, got, a.n.Stats().GathersIncomplete.Load())
	}

	// A kill of b's session while b cannot answer: not "no such session"
	// (the session is alive) but unavailable, naming b. The query waits in
	// b's queue, and b carries the kill out once it runs again (README).
	release = stallControl(t, b, nil)
	_, err := sa.Call(ctx, "wamp.session.kill", []any{sb.ID()}, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIUnavailable || len(we.Args) == 0 || !strings.Contains(fmt.Sprint(we.Args[0]), "node b did not answer") {
		t.Fatalf("kill of b's session with b stalled: %v, want %s naming node b", err, proto.URIUnavailable)
	}
	release()
	select {
	case <-sb.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("b's session still alive 10 s after b ran the kill query again")
	}
}

// NATS routes are not transitive: two nodes that both reach a third but
// not each other exchange nothing. Here a and c route to b only, and each
// advertises an address nobody listens on, so the cluster's gossip cannot
// link them. b sees the whole mesh; a and c each miss the other, and know
// it from b's heartbeats (the peers it knows): edgewamp_mesh_peers_unheard
// reads 1 on each, a warning names the missing routes, and a kill from a
// of a session on c says unavailable, not no_such_session.
func TestMissingRouteReported(t *testing.T) {
	t.Parallel()
	addrB := edgetest.FreeAddr(t)
	logs := &lockedBuf{}
	withLog := func(o *Options) {
		o.Heartbeat, o.PeerTimeout = 200*time.Millisecond, time.Second
		o.Logger = slog.New(slog.NewTextHandler(logs, nil)).With("node", o.Name)
	}
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen = addrB; withLog(o) })
	spoke := func(name string) *tnode {
		return startNode(t, name, func(o *Options) {
			o.Cluster.Listen, o.Cluster.Advertise = edgetest.FreeAddr(t), edgetest.FreeAddr(t) // never listened on
			o.Cluster.Routes = []string{"nats://" + addrB}
			withLog(o)
		})
	}
	a, c := spoke("a"), spoke("c")
	eventually(t, 15*time.Second, func() error {
		if len(b.n.Peers()) != 2 || len(a.n.Peers()) != 1 || len(c.n.Peers()) != 1 {
			return fmt.Errorf("peers: a %v, b %v, c %v", a.n.Peers(), b.n.Peers(), c.n.Peers())
		}
		for _, x := range []struct {
			n    *tnode
			want int64
		}{{a, 1}, {b, 0}, {c, 1}} {
			if u := x.n.n.Stats().PeersUnheard.Load(); u != x.want {
				return fmt.Errorf("%s: PeersUnheard %d, want %d", x.n.name, u, x.want)
			}
		}
		if !strings.Contains(logs.String(), "node=a") || !strings.Contains(logs.String(), "the NATS routes between nodes are incomplete") {
			return fmt.Errorf("no warning of a's about the missing routes yet")
		}
		return nil
	})
	if a.n.Peers()[0] != "b" || c.n.Peers()[0] != "b" {
		t.Fatalf("a sees %v, c sees %v: a route between a and c formed", a.n.Peers(), c.n.Peers())
	}

	ctx := ctxT(t, 30*time.Second)
	sc := c.dial(c.ws(), proto.JSON)
	sa := a.dial(a.ws(), proto.JSON)
	_, err := sa.Call(ctx, "wamp.session.kill", []any{sc.ID()}, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIUnavailable || len(we.Args) == 0 || !strings.Contains(fmt.Sprint(we.Args[0]), "not heard from") {
		t.Fatalf("kill from a of a session on c, which a cannot hear: %v, want %s", err, proto.URIUnavailable)
	}
	// From b, which hears both, the kill is carried out.
	sb := b.dial(b.ws(), proto.JSON)
	if _, err := sb.Call(ctx, "wamp.session.kill", []any{sc.ID()}, nil, nil); err != nil {
		t.Fatalf("kill from b: %v", err)
	}
	select {
	case <-sc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("c's session alive 10 s after b killed it")
	}
}
