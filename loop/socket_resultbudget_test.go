package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Results are never refused, so a caller that asks for one large result
// and reads nothing holds it whole, whatever max_outbound_total. While the
// router-wide output is over the budget the hard mark is high_water, but
// Send applied it only when a further message came for the connection:
// with none, nothing closed it (a byte now and then keeps its keepalive).
// The scan now closes such a connection as a slow consumer, until the
// total is under the budget. A reading caller gets its large results.
func TestSocketResultsOverBudgetClosed(t *testing.T) {
	t.Parallel()
	const budget, callers, result = 2 << 20, 8, 1 << 20
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.HighWater = bpHighWater
		o.HardLimit = bpHardLimit
		o.MaxOutboundTotal = budget
	})
	h := newHealthy(s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.registerBlob(ctx, t, result)
	var cs []net.Conn
	for range callers {
		c := dialTCP(t, s.url, 4096)
		w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
		w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
		w.expectUpgrade()
		shrinkRouterSendBuffer(t, c, 4096) // the backlog stays in the router
		p := newWAMP(t, w, proto.MsgPack)
		p.join()
		w.write(cliFrame(true, opBinary, p.callMsg(p.nextReq(), "com.blob", nil)))
		cs = append(cs, c)
	}
	// Each caller's result is queued (or the caller was closed for it).
	eventually(t, 20*time.Second, "the results queued", func() bool {
		for _, c := range cs {
			if st, ok := s.e.statOf(t, c); ok && st.backlog < result/2 {
				return false
			}
		}
		return true
	})
	for range 3 {
		s.e.scanNow(t)
	}
	var held int64
	open := 0
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		held, _, _ = s.e.Outbound()
		open = 0
		for _, c := range cs {
			if s.openAt(c) {
				open++
			}
		}
		if held <= budget || time.Now().After(deadline) {
			break
		}
	}
	if held > budget {
		t.Fatalf("%d of %d callers of a %d KiB result that do not read still open after 3 scans, %d KiB queued over a %d KiB budget",
			open, callers, result>>10, held>>10, budget>>10)
	}
	t.Logf("%d of %d callers still open after the scans, %d KiB queued (budget %d KiB)", open, callers, held>>10, budget>>10)
	// A reading caller still gets a large result.
	caller := s.dial("ws", proto.MsgPack)
	res, err := caller.Call(ctx, "com.blob", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := res.Args[0].([]byte); len(b) != result {
		t.Fatalf("the reading caller got %d bytes", len(b))
	}
	h.check()
}
