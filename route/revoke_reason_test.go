package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A removal's reason that makes the revocation longer than the peer takes
// (a RawSocket client announcing 512 bytes, the least it may) costs the
// session the reason, not the session: the callee (subscriber) is told
// without it and keeps its other registrations and subscriptions. Before,
// the UNREGISTERED (UNSUBSCRIBED) was a control message too long for the
// peer: the session was ABORTed wamp.error.payload_size_exceeded and
// left, losing everything it held, at a meta caller's choice of reason.
func TestRevocationReasonTooLongForPeer(t *testing.T) {
	e := newEnv(t, 2, nil)
	admin := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	c := e.joinRealmOn(1, proto.JSON, "realm1", revocableFeatures)
	rid := c.register("com.removed", nil)
	c.register("com.kept", nil)
	sid := c.subscribe("com.removed", nil)
	c.subscribe("com.kept", nil)
	c.peer.maxLen.Store(512)
	long := strings.Repeat("a.", 300) + "ab" // a valid URI of 602 bytes

	admin.callMeta("wamp.registration.remove_callee", []any{rid, c.id, long}, nil)
	e.sync()
	c.expectRevoked(proto.CodeUnregistered, "registration", rid, "")
	admin.callMeta("wamp.subscription.remove_subscriber", []any{sid, c.id, long}, nil)
	e.sync()
	c.expectRevoked(proto.CodeUnsubscribed, "subscription", sid, "")
	if c.peer.closed.Load() {
		t.Fatal("the session was closed")
	}
	// Still in the realm with what it kept; a reason that fits is sent.
	req := admin.call("com.kept", nil, nil, nil)
	inv := c.expect(proto.CodeInvocation)
	c.yield(inv.Request, nil, nil)
	if m := admin.expect(proto.CodeResult); m.Request != req {
		t.Fatalf("RESULT %s", describe(m))
	}
	admin.publish("com.kept", nil, []any{1}, nil)
	c.expect(proto.CodeEvent)
	rid = c.register("com.removed", nil)
	admin.callMeta("wamp.registration.remove_callee", []any{rid, c.id, "com.example.short"}, nil)
	c.expectRevoked(proto.CodeUnregistered, "registration", rid, "com.example.short")
}
