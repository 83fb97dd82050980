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
	for i := 0; i < holders; i++ {
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
