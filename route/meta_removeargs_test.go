package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestRemoveReasonBothWaysRefused: remove_callee and remove_subscriber
// take their reason by position or by keyword. Given both ways, the
// positional one was taken and the keyword ignored, silently, where every
// other meta procedure's optional argument given both ways is refused
// (metaOptArg: filter_authroles, a kill's reason and message, a
// testament's scope, a lookup's options), as Crossbar.io refuses it (a
// Python TypeError). It is refused too, and the session stays.
func TestRemoveReasonBothWaysRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	admin, v := e.join(proto.JSON), e.join(proto.MsgPack)
	sub := v.subscribe("com.t", nil)
	reg := v.register("com.p", nil)
	for _, c := range []struct {
		proc string
		id   uint64
	}{{"wamp.subscription.remove_subscriber", sub}, {"wamp.registration.remove_callee", reg}} {
		req := admin.call(c.proc, nil, []any{c.id, v.id, "com.a"}, map[string]any{"reason": "com.b"})
		admin.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	}
	v.quiet()
	// By position or by keyword alone, as before.
	admin.callMeta("wamp.subscription.remove_subscriber", []any{sub, v.id, "com.a"}, nil)
	admin.callMeta("wamp.registration.remove_callee", []any{reg, v.id}, map[string]any{"reason": "com.b"})
}
