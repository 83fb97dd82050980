package edge

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// A gather ends either through its callback or through Gather's error,
// never both: route gives back the gather's slot of its client address
// and its session's count in each (route/mesh_addrgathers.go), so a gather
// that did both gave them back twice (a session's count at -1, and its
// address's count one short for another session's gather). It did when
// the outbound queue refused the query just as the startup-settle timer
// fired with no node known: the timer ended the gather (nothing to wait
// for) and ran its callback, and Gather still returned ErrBusy. The test
// fills the queue (the node is not started: nothing drains it), and holds
// Gather with testHookGather until the settle timer has run the callback.
func TestGatherEndsOnce(t *testing.T) {
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := New(Options{Router: r, Name: "g", NatsURL: "nats://127.0.0.1:1", GatherTimeout: time.Hour, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The outbound queue refuses a meta query.
	for i := 0; n.out.pushBulk(subjQuery, "r", make([]byte, 64<<10)) == nil; i++ {
		if i > 1<<16 {
			t.Fatal("the outbound queue took everything")
		}
	}
	for i := 0; n.out.pushBulk(subjQuery, "r", nil) == nil; i++ {
		if i > 1<<16 {
			t.Fatal("the outbound queue took everything")
		}
	}

	// The settle timer ends the gather (no node known) while Gather is
	// about to queue its query.
	n.markStarted()
	var calls atomic.Int32
	ended := make(chan struct{}, 2)
	hook := func() {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Error("the settle timer did not end the gather in 5 s")
		}
	}
	n.testHookGather.Store(&hook)
	err = n.Gather([]byte("q"), func([][]byte, []string) {
		calls.Add(1)
		ended <- struct{}{}
	})
	n.testHookGather.Store(nil)
	if c := calls.Load(); c != 1 || err != nil {
		t.Fatalf("the gather's callback ran %d times and Gather returned %v; want one of the two: the callback once and nil", c, err)
	}

	// Refused before the timer fires, the gather ends by its error only:
	// the timer, when it fires, finds it gone.
	n.markStarted()
	err = n.Gather([]byte("q"), func([][]byte, []string) { calls.Add(1) })
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Gather with the queue full: %v, want ErrBusy", err)
	}
	n.gmu.Lock()
	left := len(n.gathers)
	n.gmu.Unlock()
	if left != 0 {
		t.Fatalf("%d gathers registered after Gather failed", left)
	}
	time.Sleep(4 * n.opts.Heartbeat) // past the settle timer (it fires after 2 heartbeats)
	if c := calls.Load(); c != 1 {
		t.Fatalf("a refused gather's callback ran too (%d calls)", c-1)
	}
}
