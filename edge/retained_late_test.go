package edge

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained query that reaches another node's shard after its
// asker's deadline (clock.go: four fifths of gather_timeout) is not run
// there; the asker must then count that node as not answered. It was
// answered with nothing, which is also the answer of a node holding no
// retained event: the asker took it for a whole answer, delivered no
// retained event and counted no incomplete gather
// (TestMeshInProcessGetRetainedNotChargedForBytes under load: 47 retained
// events for 48 get_retained SUBSCRIBEs, nothing counted).
func TestLateGetRetainedQueryCountedIncomplete(t *testing.T) {
	t.Parallel()
	const wait = 5 * time.Second
	pa, pb := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	a := startNode(t, "a", func(o *Options) {
		o.Cluster.Listen = pa
		o.Cluster.Routes = []string{"nats://" + pb}
		o.GatherTimeout = wait
	})
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen = pb; o.Cluster.Routes = []string{"nats://" + pa} })
	waitMesh(t, a, b)
	ctx := ctxT(t, 30*time.Second)

	pub := b.dial(b.ws(), proto.MsgPack)
	const topic = "com.late.state"
	if err := pub.Publish(ctx, topic, []any{"v"}, nil, &client.PublishOptions{Retain: true, Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	// Past a's first two heartbeats (Gather's settle), and b has heard a's
	// (its clock is known to b).
	time.Sleep(2*a.n.opts.Heartbeat + 100*time.Millisecond - a.n.since(a.n.startedAt.Load()))

	// b's shard 0, where meta queries run, held until past the query's
	// deadline there (4 s after it is sent) and before a stops waiting
	// (5 s).
	gate := make(chan struct{})
	entered := make(chan struct{})
	go b.r.Shard(0).Do(func() { close(entered); <-gate })
	<-entered
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	lateBefore := b.r.MeshStats().LateQueries.Load()
	incBefore := a.n.Stats().GathersIncomplete.Load()

	sub := a.dial(a.ws(), proto.JSON)
	got := make(chan *client.Event, 4)
	sent := time.Now()
	if _, err := sub.Subscribe(ctx, topic, func(e *client.Event) { got <- e }, &client.SubscribeOptions{GetRetained: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(wait*9/10 - time.Since(sent))
	close(gate)

	select {
	case e := <-got:
		t.Logf("retained event delivered after all: %v", e.Args)
		return
	case <-time.After(wait):
	}
	if n := b.r.MeshStats().LateQueries.Load(); n == lateBefore {
		t.Skipf("b ran the query in time (LateQueries %d): not the case under test", n)
	}
	if n := a.n.Stats().GathersIncomplete.Load(); n == incBefore {
		t.Fatalf("no retained event delivered, b counted the query late (LateQueries %d → %d), and a counted no incomplete gather (GathersIncomplete %d): a took b's answer for a whole one", lateBefore, b.r.MeshStats().LateQueries.Load(), n)
	}
}
