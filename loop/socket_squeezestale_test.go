package loop

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The scan closes a connection past high_water while the router-wide
// output is over max_outbound_total (squeezed), judged by the total as it
// is once every connection of the loop has had what gnet drained counted
// (accountOut): a reader that took a large result in full leaves it in the
// total until then, and a connection just past high_water must not be
// closed for output that is no longer held anywhere.
func TestSocketSqueezeJudgesDrainedOutput(t *testing.T) {
	t.Parallel()
	const budget, big, mid = 2 << 20, 3 << 20, 256 << 10
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.HighWater = bpHighWater
		o.HardLimit = bpHardLimit
		o.MaxOutboundTotal = budget
		rc.Shards = 1 // one loop: the reader is scanned before the paused one
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := s.dial("rs", proto.MsgPack)
	for proc, n := range map[string]int{"com.big": big, "com.mid": mid} {
		blob := make([]byte, n)
		if _, err := callee.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{blob}}, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	join := func(rcvBuf int) (*wsClient, *wamp) {
		c := dialTCP(t, s.url, rcvBuf)
		w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
		w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
		w.expectUpgrade()
		shrinkRouterSendBuffer(t, c, 4096) // what the socket does not take waits in gnet's buffer
		p := newWAMP(t, w, proto.MsgPack)
		p.join()
		return w, p
	}
	// A reader takes a result larger than the budget, in full.
	rw, rp := join(0)
	rw.write(cliFrame(true, opBinary, rp.callMsg(rp.nextReq(), "com.big", nil)))
	rp.expect(proto.CodeResult)
	// A caller that pauses its reading holds a result past high_water,
	// far under the budget.
	pw, pp := join(4096)
	pw.write(cliFrame(true, opBinary, pp.callMsg(pp.nextReq(), "com.mid", nil)))
	eventually(t, 10*time.Second, "the paused caller's result queued", func() bool {
		st, ok := s.e.statOf(t, pw.c)
		return ok && st.backlog > bpHighWater
	})
	held, _, _ := s.e.Outbound()
	t.Logf("before the scan: %d KiB counted (budget %d KiB), of which the reader's %d KiB are taken", held>>10, budget>>10, big>>10)
	s.e.scanNow(t)
	if !s.openAt(pw.c) {
		held, _, _ = s.e.Outbound()
		t.Fatalf("the scan closed a caller holding %d KiB past high_water (%d KiB) with %d KiB held router-wide under a %d KiB budget: it judged the reader's result, already taken, as held",
			mid>>10, bpHighWater>>10, held>>10, budget>>10)
	}
	pp.expect(proto.CodeResult)
}
