package edge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
	"github.com/edgewamp/edgewamp/route"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// A node's start-up judgements follow the monotonic clock: a step of the
// system clock (NTP's first sync on a board without a real-time clock,
// date -s, a VM resumed) neither ends them at once nor makes them last
// the step's length. Before, Start recorded time.Now's UnixNano: stepped
// back an hour (more than the node had been up), every gather waited for
// its GatherTimeout, though every node it knew had answered, and was
// marked incomplete (wamp.session.count, list, get_retained merges, the
// presence that feeds on_leave), and a node with routes to dial reported
// an unheard node, for the hour; stepped forward, a node just started
// trusted its view of the others at once, before two rounds of
// heartbeats.
func TestStartupJudgementsIgnoreWallClockSteps(t *testing.T) {
	checkWallStepped(t)
	node := func(t *testing.T, hb time.Duration) (*Node, *atomic.Int64) {
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: time.Hour, Heartbeat: hb, PeerTimeout: 4 * hb})
		if err != nil {
			t.Fatal(err)
		}
		var step atomic.Int64
		n.now = func() time.Time { return wallStepped(time.Now(), time.Duration(step.Load())) }
		n.opts.Cluster.Routes = []string{"nats://127.0.0.1:1"} // routes to dial: unheard's first-PeerTimeout rule
		n.markStarted()
		return n, &step
	}
	// gather sends a gather once the node knows b (unheard's rule holds
	// only while it knows no node).
	gather := func(t *testing.T, n *Node) (uint64, chan int) {
		n.peers.byName["b"] = &peer{idx: 1, name: "b", msgSubj: nodeSubject("b", "m")}
		n.peers.publish()
		done := make(chan int, 1)
		if err := n.Gather([]byte("q"), func(a [][]byte, _ []string) { done <- len(a) }); err != nil {
			t.Fatal(err)
		}
		n.gmu.Lock()
		defer n.gmu.Unlock()
		return n.gseq, done
	}

	t.Run("back", func(t *testing.T) {
		t.Parallel()
		n, step := node(t, 50*time.Millisecond)
		time.Sleep(500 * time.Millisecond) // past two heartbeats and PeerTimeout (200 ms)
		step.Store(int64(-time.Hour))
		if u := n.unheard(); u != 0 {
			t.Errorf("unheard %d past PeerTimeout, the wall clock an hour back; want 0", u)
		}
		id, done := gather(t, n)
		n.answered(id, "b", []byte("y"))
		select {
		case k := <-done:
			if k != 1 {
				t.Fatalf("%d answers, want b's", k)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a gather that every known node answered did not end (the wall clock an hour back)")
		}
	})
	t.Run("forward", func(t *testing.T) {
		t.Parallel()
		n, step := node(t, time.Minute)
		step.Store(int64(time.Hour))
		if u := n.unheard(); u != 1 {
			t.Errorf("unheard %d just after the start, the wall clock an hour on; want 1", u)
		}
		id, done := gather(t, n)
		n.answered(id, "b", []byte("y"))
		select {
		case k := <-done:
			t.Fatalf("a gather of a node just started ended with %d answers before two rounds of heartbeats (the wall clock an hour on)", k)
		case <-time.After(50 * time.Millisecond):
		}
	})
}
