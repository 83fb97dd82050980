package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSmallResultsUnreadLeaveStreamsTheirShare: plain answers over 4 KiB
// and under 64 KiB count in the SSE total while written (7a3290f), but
// unregistered: the reaper cannot cut them. Clients asking for such
// answers and reading none could fill the total with bytes no reaper
// ends, blocked longest, and the reaper then cut a stream whose client
// paused a moment, which the total had room for before. Five such
// answers of 48 KiB under a 256 KiB total, then an event stream whose
// client reads its three 12 KiB events a second late: the stream keeps
// its events, and the answers' blocked writes are the ones cut.
func TestSmallResultsUnreadLeaveStreamsTheirShare(t *testing.T) {
	const unread, size, total, events = 5, 48 << 10, 256 << 10, 3
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEBufferTotal = total
		o.Limits.WriteTimeout = time.Minute // blocked writes last the test unless cut
		o.Routes = []Route{{Method: "GET", Path: "/mid", Realm: "realm1", Call: "com.mid", Auth: Auth{Type: "none"}}}
	})
	callee := e.dial("realm1", proto.JSON)
	mid := strings.Repeat("m", size)
	var asked atomic.Int64
	e.register(callee, "com.mid", func(context.Context, *client.Invocation) (*client.Result, error) {
		asked.Add(1)
		return &client.Result{Args: []any{mid}}, nil
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	dial := func(request string) net.Conn {
		c, err := d.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		waitWithin(t, 5*time.Second, "the gateway's end of the connection", func() bool { return gatewayEnd(c) >= 0 })
		shrinkGatewaySendBuffer(t, c, 4096)
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range unread {
		dial("GET /mid HTTP/1.1\r\nHost: localhost\r\n\r\n")
		waitWithin(t, 5*time.Second, fmt.Sprintf("request %d answered", i), func() bool { return asked.Load() == int64(i+1) })
	}
	waitFor(t, "the answers' writes blocked", func() bool { return heldResultWriters() == unread })
	st := dial("GET /wamp/realm1/events/com.honest HTTP/1.1\r\nHost: localhost\r\n\r\n")
	waitFor(t, "the subscription", func() bool { return subscribedSinks(e) == 1 })
	ps, p := e.gw.pool.openPinned(identity{realm: "realm1", authid: "pub", authrole: "anonymous", method: "static"}, 0, nil, nil, nil)
	if p != nil {
		t.Fatalf("publisher: %+v", p)
	}
	for i := range events {
		args := []byte(fmt.Sprintf(`["honest-%d-%s"]`, i, strings.Repeat("h", 12<<10)))
		if r := e.gw.runSync(ps, func() *syncReply { return ps.publish(&pubReq{uri: "com.honest", args: args, wamp: true}) }); r.typ == proto.CodeError {
			t.Fatalf("publish: %s %s", r.err, r.detail)
		}
	}
	time.Sleep(time.Second) // the stream's client pauses; the reaper runs meanwhile
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 64<<10)
	for !bytes.Contains(got, []byte(fmt.Sprintf("honest-%d-", events-1))) {
		n, err := st.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("a stream reading its %d events of 12 KiB a second late, beside %d unread answers of %d KiB under a %d KiB total: %v after %d bytes (%d answers' writes still held, %d clients cut for the total); want its events",
				events, unread, size>>10, total>>10, err, len(got), heldResultWriters(), e.gw.sse.cuts.Load())
		}
	}
	if n := heldResultWriters(); n == unread {
		t.Errorf("all %d unread answers still held, %d bytes counted, over the total's share", n, e.gw.sse.bytes.Load())
	}
}
