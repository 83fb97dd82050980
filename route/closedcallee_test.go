package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A callee whose transport has closed (its Send answers ErrPeerClosed: a
// WebSocket Close frame or a reset read on its event loop) while its
// session is still attached, its departure (Detach) not run yet: a call
// picked for it never reached it, so it goes to another callee of the
// shared registration, as for a callee found gone (not established) when
// the call reached its event loop, and a registration with no other
// callee ends it no_available_callee. Before, the caller got
// wamp.error.canceled "the callee left" though another callee was there.
func TestCallToClosedCalleeRerouted(t *testing.T) {
	for _, policy := range []string{"first", "roundrobin", "last"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t, 2, nil)
			gone, ok := e.join(proto.JSON), e.join(proto.JSON)
			if policy == "last" {
				ok.register("com.g", map[string]any{"invoke": policy})
				gone.register("com.g", map[string]any{"invoke": policy})
			} else {
				gone.register("com.g", map[string]any{"invoke": policy})
				ok.register("com.g", map[string]any{"invoke": policy})
			}
			caller := e.join(proto.JSON)
			gone.peer.closed.Store(true) // the transport is closed, Detach still to come
			req := caller.call("com.g", nil, []any{1}, nil)
			e.sync()
			inv := ok.expect(proto.CodeInvocation)
			ok.yield(inv.Request, nil, []any{"ok"})
			if m := caller.expect(proto.CodeResult); m.Request != req {
				t.Fatalf("RESULT %s", describe(m))
			}
		})
	}
	t.Run("alone", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		gone := e.join(proto.JSON)
		gone.register("com.g", nil)
		caller := e.join(proto.JSON)
		gone.peer.closed.Store(true)
		req := caller.call("com.g", nil, []any{1}, nil)
		caller.expectError(proto.CodeCall, req, proto.URINoAvailableCallee)
	})
}
