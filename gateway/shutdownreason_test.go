package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A call the event loop's HTTP lane still has in flight when Shutdown
// passes its deadline ends with the gateway's WAMP session, which Shutdown
// closes itself (pool.closeAll: GOODBYE, the router answering
// wamp.close.goodbye_and_out): its answer is wamp.close.system_shutdown,
// which gateway.errors may map, as at every stop. 4235f38 took the
// router's GOODBYE URI as the reason of every session end, so such a call
// was answered 503 wamp.close.goodbye_and_out (the router's reply to the
// gateway's own GOODBYE), the configured mapping of system_shutdown
// skipped.
func TestLaneCallCutAtShutdownIsSystemShutdown(t *testing.T) {
	e := laneEnv(t, func(o *Options) {
		o.Errors = map[string]int{proto.CloseSystemShutdown: http.StatusGatewayTimeout}
	})
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	e.register(callee, "com.stuck", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		close(started)
		<-release
		return &client.Result{Args: []any{"late"}}, nil
	})
	c := e.dialGateway(t, 20*time.Second)
	io.WriteString(c, callPost("com.stuck"))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil with a call in flight past its deadline")
	}
	resp, b := readResponse(t, bufio.NewReader(c))
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(b, `"`+proto.CloseSystemShutdown+`"`) {
		t.Fatalf("a call cut by Shutdown: %d %s, want %d (gateway.errors) with error %s", resp.StatusCode, b, http.StatusGatewayTimeout, proto.CloseSystemShutdown)
	}
}

// TestCallCutAtShutdownSaysGatewayStopped: such a call's problem document
// says the gateway shut down, not that the router said GOODBYE
// wamp.close.goodbye_and_out: that GOODBYE was the router's reply to the
// gateway's own, and the detail read as if the router had ended the
// session for a reason of its own (which `edgewamp run` showed at every
// stop that cut a plain HTTP call, beside the streamed calls' "the gateway
// is shutting down: the call was still in progress at the drain's
// deadline").
func TestCallCutAtShutdownSaysGatewayStopped(t *testing.T) {
	e := laneEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	e.register(callee, "com.stuck", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		close(started)
		<-release
		return &client.Result{Args: []any{"late"}}, nil
	})
	c := e.dialGateway(t, 20*time.Second)
	io.WriteString(c, callPost("com.stuck"))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	e.gw.Shutdown(ctx)
	resp, b := readResponse(t, bufio.NewReader(c))
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(b, proto.CloseGoodbyeAndOut) || !strings.Contains(b, "the gateway is shutting down") {
		t.Fatalf("a call cut by Shutdown: %d %s, want 503 saying the gateway is shutting down", resp.StatusCode, b)
	}
}
