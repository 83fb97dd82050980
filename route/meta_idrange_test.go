package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMetaIDOutOfRangeInvalidArgument: a meta procedure given a session,
// registration or subscription id that is no WAMP id (0, or past 2^53:
// "IDs in the global scope MUST be drawn randomly from a uniform
// distribution over the complete range [1, 2^53]", WAMP §Identifiers) is
// answered wamp.error.invalid_argument, as for an id that is not an
// integer; an id in the range that names nothing is answered
// wamp.error.no_such_*. Before, 0 and 2^53+1 were looked up and answered
// no_such_session (no_such_registration, no_such_subscription), as if
// they could name one.
func TestMetaIDOutOfRangeInvalidArgument(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.join(proto.MsgPack)
	rid := callee.register("com.x", nil)
	sid := callee.subscribe("com.t", nil)
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		admin := e.join(ser)
		expect := func(proc string, args []any, uri string) {
			t.Helper()
			req := admin.call(proc, nil, args, nil)
			m := admin.recv()
			if m.Type != proto.CodeError || m.Request != req || string(m.URI) != uri {
				t.Fatalf("%v: %s%v: got %s, want ERROR %s", ser, proc, args, describe(m), uri)
			}
		}
		const past = uint64(proto.MaxID + 1)
		for _, bad := range []any{0, past, float64(proto.MaxID) * 2} {
			for _, proc := range []string{"wamp.session.get", "wamp.session.kill",
				"wamp.registration.get", "wamp.registration.list_callees", "wamp.registration.count_callees",
				"wamp.subscription.get", "wamp.subscription.list_subscribers", "wamp.subscription.count_subscribers"} {
				expect(proc, []any{bad}, proto.URIInvalidArgument)
			}
			expect("wamp.registration.remove_callee", []any{bad, callee.id}, proto.URIInvalidArgument)
			expect("wamp.registration.remove_callee", []any{rid, bad}, proto.URIInvalidArgument)
			expect("wamp.subscription.remove_subscriber", []any{bad, callee.id}, proto.URIInvalidArgument)
			expect("wamp.subscription.remove_subscriber", []any{sid, bad}, proto.URIInvalidArgument)
		}
		// The largest id is one: it names nothing here.
		const top = uint64(proto.MaxID)
		expect("wamp.session.get", []any{top}, proto.URINoSuchSession)
		expect("wamp.session.kill", []any{top}, proto.URINoSuchSession)
		expect("wamp.registration.get", []any{top}, proto.URINoSuchRegistration)
		expect("wamp.subscription.count_subscribers", []any{top}, proto.URINoSuchSubscription)
		expect("wamp.registration.remove_callee", []any{rid, top}, proto.URINoSuchSession)
		// [WAMP Session Meta API, wamp.session.kill]: "Specifying the
		// caller's own session will result in a wamp.error.no_such_session
		// since no _other_ session with that ID exists."
		expect("wamp.session.kill", []any{admin.id}, proto.URINoSuchSession)
	}
	callee.quiet()
}
