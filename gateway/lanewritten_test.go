package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestLaneSlotFreedForReaderNextRequest: the lane holds a call's
// in-flight slots until the loop has written its answer (OnWritten), and
// learnt that gnet had drained a large answer only at the scan, once a
// second: a client that read its whole answer and sent its next request
// at once (max_in_flight_per_address 1: a backend's one connection,
// keep-alive, one request after another) was refused 429, its own
// answer, already read, still holding the slot. The next request now
// finds the slot free.
func TestLaneSlotFreedForReaderNextRequest(t *testing.T) {
	if os.Getenv("EDGEWAMP_TEST_GATEWAY_LANE") == "off" {
		t.Skip("the event loop's lane is off")
	}
	const size, rounds = 256 << 10, 3
	e := newEnv(t, func(o *Options) { o.Limits.MaxInFlightPerAddress = 1 })
	callee := e.dial("realm1", proto.JSON)
	big := strings.Repeat("r", size)
	e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{big}}, nil
	})
	c, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A small send buffer on the gateway's end: gnet holds most of the
	// answer and drains it as the client reads.
	waitFor(t, "the gateway's end of the connection", func() bool { return gatewayEnd(c) >= 0 })
	shrinkGatewaySendBuffer(t, c, 4096)
	br := bufio.NewReader(c)
	const req = "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	for i := range rounds {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n < size {
			t.Fatalf("request %d of one connection reading each answer whole before the next: %d, %d bytes, %v; want 200 with the result (max_in_flight_per_address 1)", i+1, resp.StatusCode, n, err)
		}
	}
}
