package loop

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Past max_inbound_total, a connection that holds partial input it has not
// grown for stallAfter is closed before the sender whose message takes the
// total over: here a holder keeps 448 KiB of a frame (under half of a
// 1 MiB budget, so the stall check never judges it) for longer than
// stallAfter, and a caller then sends a 640 KiB call. Before, the caller,
// the one that grew past the budget, was closed (1009) and the stalled
// holder kept its 448 KiB for as long as it stayed.
func TestSocketInboundBudgetShedsStalledFirst(t *testing.T) {
	t.Parallel()
	const budget = 1 << 20
	clk := newFakeClock()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = budget
		o.HandshakeTimeout = time.Hour
		o.Now = clk.Now
		rc.HelloTimeout = time.Hour
	})
	callee := s.dial("rs", proto.MsgPack)
	proc := registerEcho(t, callee)

	holder := dialWS(t, s.url, proto.MsgPack)
	holder.autoPong = false
	newWAMP(t, holder, proto.MsgPack).join()
	holder.write(cliFrame(true, opBinary, make([]byte, 4<<20))[:14+448<<10])
	eventually(t, ioTimeout, "the holder's partial frame held", func() bool {
		held, _, _ := s.e.Inbound()
		return held >= 448<<10
	})
	// Growth is judged scan to scan: the first records what the holder
	// sent, the second finds it has not grown since.
	s.tick(clk, stallAfter+time.Second)
	s.tick(clk, stallAfter+time.Second)
	if s.e.inboundPressed() {
		t.Fatal("the holder alone took the engine past half its budget: the stall check would judge it")
	}

	w := dialWS(t, s.url, proto.MsgPack)
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	w.send(p.callMsg(p.nextReq(), proc, []any{strings.Repeat("x", 640<<10)}))
	b, err := w.readMsg(ioTimeout)
	if err != nil {
		t.Fatalf("a 640 KiB call with a stalled holder of 448 KiB under a 1 MiB budget: %v", err)
	}
	if m, err := proto.Decode(proto.MsgPack, b); err != nil || m.Type != proto.CodeResult {
		t.Fatalf("the call's answer: %v %v, want a RESULT", m, err)
	}
	_, err = holder.readMsg(ioTimeout)
	if ce, ok := err.(*errWSClosed); !ok || ce.code != 1009 {
		t.Fatalf("the stalled holder: %v, want a 1009 close", err)
	}
	eventually(t, ioTimeout, "the holder's bytes given back", func() bool {
		held, _, _ := s.e.Inbound()
		return held == 0 && s.e.Stats().Closes[CloseInboundBudget] == 1
	})
}

// A shed round under way takes only the growth of the excess since the
// round's last call, not the whole excess again: here eight stalled
// holders of 64 KiB sit on the two loops, the loops are held busy, and two
// growths report excesses of 100 KiB, then 110 KiB, before the loops run
// their part of the round. 110 KiB needs two holders closed (three when
// both loops check the need at once). Before, the round added the whole
// second excess to the first (210 KiB): four holders were closed, twice
// what was needed.
func TestSocketInboundShedRoundAddsOnlyTheIncrease(t *testing.T) {
	t.Parallel()
	const holders, hold = 8, 64 << 10
	clk := newFakeClock()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = 64 << 20 // never pressed: only the test's shed calls close
		o.HandshakeTimeout = time.Hour
		o.Now = clk.Now
		rc.HelloTimeout = time.Hour
	})
	if n := len(s.e.allLoops()); n != 2 {
		t.Fatalf("%d loops, want 2", n)
	}
	stallHolders(t, s, clk, holders, hold)
	var mu sync.Mutex
	perLoop := map[*loopState]int{}
	gate := make(chan struct{})
	var busy sync.WaitGroup
	for _, ls := range s.e.allLoops() {
		busy.Add(1)
		if err := ls.Execute(func() {
			for _, cn := range ls.conns {
				if cn != nil && cn.stale != 0 {
					mu.Lock()
					perLoop[ls]++
					mu.Unlock()
				}
			}
			busy.Done()
			<-gate
		}); err != nil {
			t.Fatal(err)
		}
	}
	busy.Wait()
	if len(perLoop) != 2 {
		close(gate)
		t.Fatalf("stalled holders per loop %v: the round would not cross loops", perLoop)
	}
	if !s.e.shed(100<<10) || !s.e.shed(110<<10) {
		close(gate)
		t.Fatal("the stalled holders were not taken to make up for the excess")
	}
	close(gate)
	eventually(t, ioTimeout, "the shed round over", func() bool { return !s.e.shedding.Load() })
	_, _, closed := s.e.Inbound()
	if closed < 2 || closed > 3 {
		t.Fatalf("%d stalled holders of 64 KiB closed to shed 110 KiB, want 2 (3 when the loops check at once)", closed)
	}
}

// A shed round's excess can shrink and grow again before the round ends:
// here loop A sheds its part (two holders of 64 KiB for an excess of
// 100 KiB) and their bytes are given back while loop B is held busy, so
// the total falls 28 KiB under the budget; then a connection grows to
// 122 KiB past it. That is new excess, all of it: loop B must close two
// holders. Before, the round compared 122 KiB with the 100 KiB it was
// first called with and added 22 KiB to a need of -28 KiB: B closed
// nothing and the total stayed 122 KiB over the budget.
func TestSocketInboundShedRoundExcessShrinksThenGrows(t *testing.T) {
	t.Parallel()
	const holders, hold = 8, 64 << 10
	clk := newFakeClock()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = 64 << 20 // never pressed: only the test's shed calls close
		o.HandshakeTimeout = time.Hour
		o.Now = clk.Now
		rc.HelloTimeout = time.Hour
	})
	loops := s.e.allLoops()
	if len(loops) != 2 {
		t.Fatalf("%d loops, want 2", len(loops))
	}
	stallHolders(t, s, clk, holders, hold)
	// Hold one loop (B) busy; the other (A) runs its part at once.
	var b *loopState
	staleOn := func(ls *loopState) (n int) {
		done := make(chan int, 1)
		if err := ls.Execute(func() {
			c := 0
			for _, cn := range ls.conns {
				if cn != nil && cn.stale != 0 {
					c++
				}
			}
			done <- c
		}); err != nil {
			t.Fatal(err)
		}
		return <-done
	}
	if staleOn(loops[0]) >= 2 && staleOn(loops[1]) >= 2 {
		b = loops[1]
	} else {
		t.Fatalf("stalled holders per loop %d and %d: the round would not cross loops", staleOn(loops[0]), staleOn(loops[1]))
	}
	gate := make(chan struct{})
	held := make(chan struct{})
	if err := b.Execute(func() { close(held); <-gate }); err != nil {
		t.Fatal(err)
	}
	<-held
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	before, _, _ := s.e.Inbound()
	if !s.e.shed(100 << 10) {
		t.Fatal("the stalled holders were not taken to make up for the excess")
	}
	eventually(t, ioTimeout, "loop A's shed holders given back", func() bool {
		h, _, _ := s.e.Inbound()
		return h <= before-2*hold
	})
	if !s.e.shedding.Load() {
		t.Fatal("the round ended with loop B held")
	}
	if !s.e.shed(122 << 10) {
		t.Fatal("the stalled holders were not taken for the new excess")
	}
	close(gate)
	eventually(t, ioTimeout, "the shed round over", func() bool { return !s.e.shedding.Load() })
	// Each close is counted when its loop decides it, before the round ends.
	if _, _, closed := s.e.Inbound(); closed < 4 {
		t.Fatalf("%d stalled holders of 64 KiB closed, want 4 (2 for 100 KiB, 2 more for the 122 KiB after them)", closed)
	}
}

// stallHolders has holders WebSocket sessions each send the first hold
// bytes of a 4 MiB frame and stop, then steps clk past two stall scans,
// so that every holder counts as stale (Engine.staleHeld).
func stallHolders(t *testing.T, s *testServer, clk *fakeClock, holders, hold int64) {
	t.Helper()
	for range holders {
		h := dialWS(t, s.url, proto.MsgPack)
		h.autoPong = false
		newWAMP(t, h, proto.MsgPack).join()
		h.write(cliFrame(true, opBinary, make([]byte, 4<<20))[:14+hold])
	}
	eventually(t, ioTimeout, "the holders' partial frames held", func() bool {
		held, _, _ := s.e.Inbound()
		return held >= holders*hold
	})
	s.tick(clk, stallAfter+time.Second)
	s.tick(clk, stallAfter+time.Second)
	if st := s.e.staleHeld.Load(); st < holders*hold {
		t.Fatalf("stale bytes %d, want %d", st, holders*hold)
	}
}
