package loop

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Holders whose partial frames wait in their stashes (frames under
// largeMin, stash.go) are counted by the stashes' capacity, judged stale
// when they stop, and shed, before the caller whose message takes the
// total past max_inbound_total; once all have closed the total is 0.
func TestSocketInboundShedsStashHolders(t *testing.T) {
	t.Parallel()
	const budget, holders, hold = 1 << 20, 6, 50000
	clk := newFakeClock()
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = budget
		o.HandshakeTimeout = time.Hour
		o.Now = clk.Now
		rc.HelloTimeout = time.Hour
	})
	callee := s.dial("rs", proto.MsgPack)
	proc := registerEcho(t, callee)
	hs := make([]*wsClient, holders)
	for i := range hs {
		h := dialWS(t, s.url, proto.MsgPack)
		h.autoPong = false
		newWAMP(t, h, proto.MsgPack).join()
		h.write(cliFrame(true, opBinary, make([]byte, 60000))[:4+hold])
		hs[i] = h
	}
	eventually(t, ioTimeout, "the holders' partial frames stashed", func() bool {
		held, _, _ := s.e.Inbound()
		return held >= holders*64<<10 // each stash 64 KiB, counted by its capacity
	})
	s.tick(clk, stallAfter+time.Second)
	s.tick(clk, stallAfter+time.Second)
	if st := s.e.staleHeld.Load(); st < holders*64<<10 {
		t.Fatalf("stale bytes %d, want %d", st, holders*64<<10)
	}
	w := dialWS(t, s.url, proto.MsgPack)
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	w.send(p.callMsg(p.nextReq(), proc, []any{strings.Repeat("x", 800<<10)}))
	b, err := w.readMsg(ioTimeout)
	if err != nil {
		t.Fatalf("an 800 KiB call with %d stalled stash holders under a 1 MiB budget: %v", holders, err)
	}
	if m, err := proto.Decode(proto.MsgPack, b); err != nil || m.Type != proto.CodeResult {
		t.Fatalf("the call's answer: %v %v, want a RESULT", m, err)
	}
	eventually(t, ioTimeout, "stalled stash holders shed", func() bool {
		return s.e.Stats().Closes[CloseInboundBudget] > 0
	})
	closed := s.e.Stats().Closes[CloseInboundBudget]
	for _, h := range hs {
		h.c.Close()
	}
	w.c.Close()
	eventually(t, ioTimeout, "the inbound total back to 0", func() bool {
		held, _, _ := s.e.Inbound()
		return held == 0
	})
	t.Logf("%d of %d stalled stash holders shed for an 800 KiB call", closed, holders)
}
