package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestCallCutByRouterStopIs503: a gateway call still in progress when the
// router stops first (an embedder calling Router.Shutdown before the
// gateway's Shutdown) is answered 503 wamp.close.system_shutdown, which
// gateway.errors may map, as before e130953. Since e130953 the router
// answers every call left at its stop ERROR wamp.error.canceled ("the
// callee's router shut down while the call was in progress") before its
// GOODBYE, and the gateway answered that 409 Conflict, as if the client
// had raced another request. The router marks that ERROR
// (route.KeyShutdown); a canceled ERROR without the mark (a callee that
// left, a callee's own) is still 409.
func TestCallCutByRouterStopIs503(t *testing.T) {
	for _, tc := range []struct {
		name   string
		errors map[string]int
		want   int
	}{
		{"default", nil, http.StatusServiceUnavailable},
		{"mapped", map[string]int{proto.CloseSystemShutdown: http.StatusGatewayTimeout}, http.StatusGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Errors = tc.errors })
			callee := e.dial("realm1", proto.JSON)
			release := make(chan struct{})
			defer close(release)
			started := make(chan struct{})
			e.register(callee, "com.stuck", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
				close(started)
				<-release
				return &client.Result{Args: []any{"late"}}, nil
			})
			type answer struct {
				status int
				body   string
			}
			got := make(chan answer, 1)
			go func() {
				resp, b := e.do("POST", "/wamp/realm1/call/com.stuck", "{}")
				got <- answer{resp.StatusCode, string(b)}
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the callee did not get the call")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.r.Shutdown(ctx)
			var a answer
			select {
			case a = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("no answer 10 s after the router's stop")
			}
			if a.status != tc.want || !strings.Contains(a.body, `"error":"`+proto.CloseSystemShutdown+`"`) {
				t.Fatalf("a call the router's stop ended: %d %s, want %d with error %s", a.status, a.body, tc.want, proto.CloseSystemShutdown)
			}
		})
	}
}
