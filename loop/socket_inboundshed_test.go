package loop

import (
	"strings"
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
