package gateway

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeCallTimeoutOverflowCapped: a bridge call's options.timeout so
// large that it overflows a time.Duration in milliseconds is capped by
// max_call_timeout like any other large timeout, not turned into a call
// without any timeout at all.
func TestBridgeCallTimeoutOverflowCapped(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.CallTimeout, o.MaxCallTimeout = 300*time.Millisecond, 300*time.Millisecond })
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.never", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	for _, ms := range []string{"9223372036855", "18446744073709"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		req, _ := newRequest(ctx, "POST", e.base+"/wamp/realm1/call/com.never", `{"options":{"timeout":`+ms+`}}`)
		resp, err := e.hc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("timeout %s ms: no answer after %v (max_call_timeout 300ms): %v", ms, time.Since(start).Round(time.Millisecond), err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		expectProblem(t, resp, body, http.StatusGatewayTimeout, proto.URITimeout)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("timeout %s ms: answered after %v, max_call_timeout 300ms", ms, d)
		}
	}
}
