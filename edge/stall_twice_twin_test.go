package edge

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two nodes under one name (twins: peers.go): a1's process stalls twice
// in a row before reading anything between (TestStalledTwiceKeepsLivePeer).
// a1 must not forget a2, which it would hear again a moment later; while
// forgotten, a single registration a2 holds is taken over on a1
// (claims.go, twinAlive).
func TestStalledTwiceTwinsKeepEachOther(t *testing.T) {
	const (
		hb    = 100 * time.Millisecond
		pt    = time.Second
		stall = 1500 * time.Millisecond
	)
	url := jsServer(t)
	logs1 := &lockedBuf{}
	a1 := startNode(t, "a", func(o *Options) {
		o.NatsURL, o.Logger = url, slog.New(slog.NewTextHandler(logs1, nil))
		o.Heartbeat, o.PeerTimeout = hb, pt
	})
	a2 := startNode(t, "a", func(o *Options) {
		o.NatsURL = url
		o.Heartbeat, o.PeerTimeout = hb, 30*time.Second // a2 is not stalled
	})
	eventually(t, 10*time.Second, func() error {
		for i, n := range []*tnode{a1, a2} {
			if g := n.n.Stats().PeersSameName.Load(); g != 1 {
				return fmt.Errorf("a%d: PeersSameName = %d, want 1", i+1, g)
			}
		}
		return nil
	})
	var held sync.RWMutex
	// The pump waits while held is locked: an empty critical section on
	// purpose.
	pump := func() {
		held.RLock()
		//lint:ignore SA2001 a gate, not a guard of data
		held.RUnlock()
	}
	a1.n.testHookControlPump.Store(&pump)
	t.Cleanup(func() { a1.n.testHookControlPump.Store(nil) })
	var ticks atomic.Int32
	var alive atomic.Bool
	alive.Store(true)
	boot := ""
	for b := range *a1.n.peers.twinView.Load() {
		boot = fmt.Sprint(b)
	}
	done := make(chan struct{})
	tick := func() {
		switch ticks.Add(1) {
		case 1:
			held.Lock()
		case 4:
			time.Sleep(stall)
		case 5:
			time.Sleep(stall)
			time.AfterFunc(20*time.Millisecond, func() { held.Unlock(); close(done) })
		default:
			if !a1.n.twinAlive(boot) {
				alive.Store(false)
			}
		}
	}
	a1.n.testHookTick.Store(&tick)
	t.Cleanup(func() { a1.n.testHookTick.Store(nil) })
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a1's dispatcher never stalled twice")
	}
	time.Sleep(pt / 2)
	const forgot = "no longer heard"
	f := strings.Count(logs1.String(), forgot)
	t.Logf("a1, stalled twice (%v each) before reading a2's heartbeats: forgot a2 %d times, PeersSameName %d, a2 held alive at each tick after %v", stall, f, a1.n.Stats().PeersSameName.Load(), alive.Load())
	if f != 0 || !alive.Load() {
		t.Errorf("a1, its process stalled twice in a row (%v each) with a2's heartbeats not read between, forgot a2 on waking (%d times; held alive at each tick after: %v)", stall, f, alive.Load())
	}
}
