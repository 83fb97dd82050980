package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
)

// TestLaneUnreadAnswersSqueezed: the event loop's lane queues a bridge
// call's answer to its connection, where it counts in the router-wide
// output (max_outbound_total) until the client reads it; what bounded
// such answers was their number only (the in-flight slots held until
// written). Past the budget the loops close the connections holding the
// largest backlogs, but only WebSocket and RawSocket ones: a few HTTP
// clients asking for large results and reading none kept the total past
// it for as long as they liked, and meanwhile every WAMP connection was
// held to the squeezed marks (events dropped past 16 KiB of backlog) and
// the WAMP connections past high_water were the ones closed. The lane's
// connections past high_water are now among those the squeeze closes,
// largest first.
func TestLaneUnreadAnswersSqueezed(t *testing.T) {
	if os.Getenv("EDGEWAMP_TEST_GATEWAY_LANE") == "off" {
		t.Skip("the event loop's lane is off")
	}
	const conns, size, budget = 8, 512 << 10, 1 << 20
	e := newEnvLoop(t, nil, func(lo *loop.Options) { lo.MaxOutboundTotal = budget }, func(o *Options) {
		o.Limits.MaxInFlightPerAddress = 2 * conns
	})
	callee := e.dial("realm1", proto.JSON)
	big := strings.Repeat("r", size)
	var asked atomic.Int64
	e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		asked.Add(1)
		return &client.Result{Args: []any{big}}, nil
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for i := range conns {
		c, err := d.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		waitWithin(t, 5*time.Second, "the gateway's end of the connection", func() bool { return gatewayEnd(c) >= 0 })
		shrinkGatewaySendBuffer(t, c, 4096)
		if _, err := io.WriteString(c, "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			t.Fatal(err)
		}
		waitWithin(t, 5*time.Second, fmt.Sprintf("request %d answered", i), func() bool { return asked.Load() == int64(i+1) })
	}
	if e.laneServed.Load() == 0 {
		t.Fatal("the lane served none of the calls")
	}
	deadline := time.Now().Add(5 * time.Second)
	held, _, _ := e.eng.Outbound()
	for held > budget && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		held, _, _ = e.eng.Outbound()
	}
	if held > budget {
		t.Fatalf("%d lane connections asking for a %d KiB result each, reading none: %d KiB of output held after 5 s, over max_outbound_total (%d KiB)",
			conns, size>>10, held>>10, budget>>10)
	}
	waitFor(t, "the squeezed connections' slots given back", func() bool { return e.gw.inflight.Load() <= int64(budget/size) })
}
