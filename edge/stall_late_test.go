package edge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/proto"
)

// A control dispatcher chronically scheduled late (a busy or starved
// host: each tick taken over two heartbeats late, the node running
// meanwhile) is credited a stall (runControl) at its ticks. A peer killed
// meanwhile (no goodbye) must still be taken for dead within a bounded
// time: peer_timeout and a stall or two, not peer_timeout times the
// lateness over a heartbeat.
func TestLateDispatcherStillFindsDeadPeer(t *testing.T) {
	const (
		hb   = 100 * time.Millisecond
		pt   = time.Second
		late = 500 * time.Millisecond
	)
	nodes := clusterWith(t, func(o *Options) {
		o.Heartbeat = hb
		o.PeerTimeout = pt
	}, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	hook := func() { time.Sleep(late) }
	a.n.testHookTick.Store(&hook)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	time.Sleep(2 * pt)
	if lost := a.n.Stats().PeersLost.Load() + b.n.Stats().PeersLost.Load(); lost != 0 {
		t.Fatalf("a's dispatcher %v late: peers lost %d before any was killed (a sees %v, b sees %v)", late, lost, a.n.Peers(), b.n.Peers())
	}
	killHard(c)
	start := time.Now()
	bound := pt + 4*(late+hb)
	var lostAt time.Duration
	if !within(4*bound, func() error {
		if slices.Contains(a.n.Peers(), "c") {
			return fmt.Errorf("a still holds c")
		}
		lostAt = time.Since(start)
		return nil
	}) {
		t.Fatalf("a, its dispatcher %v late at each tick, still held killed c %v after its kill", late, 4*bound)
	}
	t.Logf("a (its dispatcher %v late at each tick) took killed c for dead %v after its kill (peer_timeout %v); b did %v", late, lostAt.Round(time.Millisecond), pt, !slices.Contains(b.n.Peers(), "c"))
	if lostAt > bound {
		t.Errorf("a, its dispatcher %v late at each tick, took killed c for dead %v after its kill: over %v (peer_timeout %v and four late ticks)", late, lostAt.Round(time.Millisecond), bound, pt)
	}
	if !slices.Contains(b.n.Peers(), "a") || !slices.Contains(a.n.Peers(), "b") {
		t.Errorf("a and b lost each other: a sees %v, b sees %v", a.n.Peers(), b.n.Peers())
	}
}

// A REGISTER of a single procedure held by a node life never heard waits
// peer_timeout for it (claims.go, wait); the claim store's waits are
// credited the stalls of this node's process the control dispatcher
// credits its peers (creditStalls). A dispatcher late at every tick must
// not make that wait (lateness / heartbeat) times as long.
func TestLateDispatcherUnheardClaimWaitBounded(t *testing.T) {
	const (
		hb   = 100 * time.Millisecond
		pt   = time.Second
		late = 500 * time.Millisecond
	)
	ctx := ctxT(t, 60*time.Second)
	url := jsServer(t)
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.Heartbeat, o.PeerTimeout = url, hb, pt })
	waitClaims(t, 10*time.Second, a)
	js, err := jetstream.New(a.n.nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, claimBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, claimKey("realm1", proto.MatchExact, "com.dead.0"), []byte("z\n12345")); err != nil {
		t.Fatal(err)
	}
	s := a.dial(a.ws(), proto.JSON)
	hook := func() { time.Sleep(late) }
	a.n.testHookTick.Store(&hook)
	t.Cleanup(func() { a.n.testHookTick.Store(nil) })
	time.Sleep(2 * (late + hb)) // the dispatcher late for a while
	start := time.Now()
	errs := registerEach(ctx, s, "com.dead.", 1)()
	took := time.Since(start)
	bound := pt + 4*(late+hb)
	t.Logf("a REGISTER of a claim of a life never heard, a's dispatcher %v late at each tick: %v (%v); credited %v in all", late, took.Round(time.Millisecond), errs[0], time.Duration(a.n.stallCredit.Load()).Round(time.Millisecond))
	if errs[0] != nil {
		t.Fatalf("registering com.dead.0, held by a node never heard: %v", errs[0])
	}
	if took > bound {
		t.Errorf("a REGISTER of a claim of a life never heard, a's dispatcher %v late at each tick, took %v: over %v (peer_timeout %v and four late ticks)", late, took.Round(time.Millisecond), bound, pt)
	}
}
