package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A subscription to a long (valid, under proto.MaxURILen) URI must not
// cost the node its NATS connection: the SUB line of its subject exceeds
// the server's max_control_line (4 KiB), the server closes the
// connection, and nats.go resends the same SUB on every reconnect.
func TestLongURISubscriptionKeepsTheMesh(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 30*time.Second)
	ch := make(chan *client.Event, 64)
	sb := b.dial(b.rs(), proto.JSON)
	if _, err := sb.Subscribe(ctx, "com.normal", func(e *client.Event) { ch <- e }, nil); err != nil {
		t.Fatal(err)
	}
	pub := a.dial(a.ws(), proto.JSON)
	waitEvent(t, pub, "com.normal", ch)

	// Escaped components ('$' is not a plain token): the subject is 8/5
	// of the URI.
	long := "com.long." + strings.Repeat("$", proto.MaxURILen-len("com.long."))
	longCh := make(chan *client.Event, 64)
	attacker := b.dial(b.ws(), proto.JSON)
	if _, err := attacker.Subscribe(ctx, long, func(e *client.Event) { longCh <- e }, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if d := b.n.Stats().Disconnects.Load(); d != 0 {
		t.Errorf("B lost its NATS connection %d times after one long subscription", d)
	}
	waitEvent(t, pub, "com.normal", ch)
	// The long topic works across the mesh too, and publishing to it
	// costs A nothing.
	waitEvent(t, pub, long, longCh)
	if d := a.n.Stats().Disconnects.Load(); d != 0 {
		t.Errorf("A lost its NATS connection %d times publishing to a long topic", d)
	}
	waitEvent(t, pub, "com.normal", ch)
}

// A node that takes a peer for dead forgets the invocations that peer's
// callers made on it; when only one side did (a short black hole, seen by
// one node's PeerTimeout and not yet by the other's), the other must
// still learn of it once they hear each other again, or its callers wait
// for ever.
func TestOneSidedPeerDropFailsCalls(t *testing.T) {
	t.Parallel()
	addrA, addrB := edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	pa, pb := newProxy(t, addrA), newProxy(t, addrB)
	b := startNode(t, "b", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Advertise = addrB, pb.addr()
		o.PeerTimeout = time.Minute // B does not notice the blip
	})
	a := startNode(t, "a", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Advertise = addrA, pa.addr()
		o.Cluster.Routes = []string{"nats://" + pb.addr()}
		o.Heartbeat, o.PeerTimeout = 200*time.Millisecond, time.Second
	})
	waitMesh(t, a, b)
	ctx := ctxT(t, 60*time.Second)
	callee := a.dial(a.rs(), proto.JSON)
	if _, err := callee.Register(ctx, "com.hold", func(ctx context.Context, _ *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := b.dial(b.ws(), proto.JSON)
	eventually(t, 5*time.Second, func() error {
		if len(b.r.MeshCallees("realm1", "com.hold")) != 1 {
			return fmt.Errorf("B's directory has no com.hold yet")
		}
		return nil
	})
	errc := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := caller.Call(cctx, "com.hold", nil, nil, nil)
		errc <- err
	}()
	eventually(t, 5*time.Second, func() error {
		if a.r.MeshPending() != 1 {
			return fmt.Errorf("the invocation has not reached A")
		}
		return nil
	})
	pa.freeze()
	pb.freeze()
	eventually(t, 5*time.Second, func() error {
		if len(a.n.Peers()) != 0 {
			return fmt.Errorf("A still sees %v", a.n.Peers())
		}
		return nil
	})
	pa.restore()
	pb.restore()
	waitMesh(t, a, b)
	healed := time.Now()
	select {
	case err := <-errc:
		if wampErr(err) != proto.URICanceled {
			t.Fatalf("the call: %v, want %s", err, proto.URICanceled)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("B's caller got no answer %v after the heal (A forgot the invocation)", time.Since(healed).Round(time.Millisecond))
	}
	waitNothingPending(t, a, b)
}

// An edge node whose uplink is down accepts single registrations
// provisionally after claimWait. The claims go through one worker: a
// client that registers several procedures must not make every other
// client's REGISTER wait claimWait once per procedure queued before it.
func TestClaimsDuringOutageDoNotQueueUp(t *testing.T) {
	t.Parallel()
	hub := edgetest.FreeAddr(t) // nothing listens: the uplink is down
	e := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + hub} })
	ctx := ctxT(t, 90*time.Second)
	noop := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	busy := e.dial(e.ws(), proto.JSON)
	const n = 8
	errc := make(chan error, n)
	for i := range n {
		go func() {
			_, err := busy.Register(ctx, fmt.Sprintf("com.busy.p%d", i), noop, nil)
			errc <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	other := e.dial(e.rs(), proto.CBOR)
	start := time.Now()
	if _, err := other.Register(ctx, "com.other", noop, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*claimWait {
		t.Errorf("a REGISTER during the outage took %v behind %d others (claimWait %v)", took.Round(time.Millisecond), n, claimWait)
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// The outbound budget drops events when a client floods the mesh; it
// must not drop the node's own heartbeats (after PeerTimeout without
// one, every other node takes this one for dead and fails the calls it
// holds) or its directory changes. A node that is not started has no
// sender: what is queued stays queued.
func TestOutboundBudgetKeepsControlMessages(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Router: r, Name: "a", Cluster: ClusterOptions{Listen: "127.0.0.1:0"}, MaxOutbound: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A client's events fill the budget.
	for n.Publish("realm1", []byte("com.flood"), make([]byte, 64<<10)) == nil {
	}
	n.heartbeat()
	n.Registered("realm1", route.MeshReg{URI: "com.proc", Callees: 1})
	var hb, delta bool
	for _, it := range n.out.cur.items {
		hb = hb || it.subj == subjHeartbeat
		delta = delta || it.subj == subjDelta
	}
	if !hb || !delta {
		t.Fatalf("with the budget full of events: heartbeat queued %v, directory change queued %v", hb, delta)
	}
}

// A release is never dropped for a full queue of claims: a dropped one
// left this node holding the key of a registration that was gone (a
// ghost refusing the procedure on every other node). The store is
// unreachable, so the worker's first claim waits claimWait while the
// others queue behind it.
func TestClaimReleaseNeverDropped(t *testing.T) {
	t.Parallel()
	hub := edgetest.FreeAddr(t) // nothing listens: the uplink is down
	e := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + hub} })
	busy := 0
	for i := range maxClaimJobs + 8 {
		e.n.Claim("realm1", proto.MatchExact, fmt.Sprintf("com.p%d", i), func(err error) {
			if err == errClaimsFull {
				busy++ // the caller's goroutine (refused at once)
			}
		})
	}
	if busy == 0 {
		t.Fatalf("the claim queue took %d claims: the test needs it full", maxClaimJobs+8)
	}
	e.n.Release("realm1", proto.MatchExact, "com.p5") // queued behind its claim
	if d := e.n.Stats().ReleasesDropped.Load(); d != 0 {
		t.Fatalf("%d releases dropped", d)
	}
	held := make(chan bool, 1)
	key := claimKey("realm1", proto.MatchExact, "com.p5")
	deadline := time.Now().Add(30 * time.Second)
	for {
		queued := e.n.claims.submit(claimJob{key: "probe", done: func(error) {
			_, ok := e.n.claims.held[key] // on the worker, after every job before it
			held <- ok
		}})
		if queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim queue never made room")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case ok := <-held:
		if ok {
			t.Fatal("the released key is still held: a ghost claim")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the claim worker did not get through its queue")
	}
}

// A REGISTER of a single procedure that reaches the claim store after the
// node began to shut down is refused as such, not as a full outbound queue
// (the text the client sees in wamp.error.unavailable).
func TestClaimAfterShutdownSaysSo(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", func(o *Options) { o.Cluster.Listen = edgetest.FreeAddr(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.n.Shutdown(ctx)
	var got error
	a.n.Claim("realm1", proto.MatchExact, "com.late", func(err error) { got = err })
	if !errors.Is(got, errClaimsClosed) {
		t.Fatalf("a claim after shutdown: %v, want %v", got, errClaimsClosed)
	}
}
