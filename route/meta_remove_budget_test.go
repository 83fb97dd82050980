package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.remove_callee and wamp.subscription.remove_subscriber
// look for the session among the callees of the registration (the
// subscribers of the subscription on the session's loop), a walk of up to
// every session of the realm, for a CALL of a few dozen bytes: they were
// not in the session's walk budget, where list_callees and
// list_subscribers, which walk the same lists, are, so a session could
// pipeline them without bound (at 20,000 subscribers, 2,000 of them took
// the loop 0.5 s, against 0.3 s for as many wamp.subscription.get). They
// are now charged each entry they may visit (not as a listed entry: they
// list nothing), and wait their turn past the budget as the others do.
func TestRemoveCalleeSubscriberWalkBudgeted(t *testing.T) {
	e := newEnv(t, 1, nil)
	admin := e.join(proto.MsgPack)
	const crowd = 600
	var subID, regID uint64
	for i := 0; i < crowd; i++ {
		c := e.join(proto.MsgPack)
		subID = c.subscribe("com.crowd", nil)
		regID = c.register("com.crowd", map[string]any{"invoke": "roundrobin"})
	}
	// Each names the admin, a session of the realm that is neither a
	// subscriber nor a callee: each walks the whole list to find that.
	for _, tc := range []struct {
		proc string
		id   uint64
		uri  string
	}{
		{"wamp.subscription.remove_subscriber", subID, proto.URINoSuchSubscription},
		{"wamp.registration.remove_callee", regID, proto.URINoSuchRegistration},
	} {
		e.advance(time.Minute) // a full budget
		const n = 120
		first := admin.req + 1
		for i := 0; i < n; i++ {
			admin.sendAsync(&proto.Message{Type: proto.CodeCall, Request: admin.nextReq(), Dict: admin.opts(nil),
				URI: []byte(tc.proc), Args: raw(t, proto.MsgPack, []any{tc.id, admin.id})})
		}
		e.sync()
		answered := 0
		next := func() bool {
			select {
			case m := <-admin.peer.in:
				if m.Type != proto.CodeError || m.Request != first+uint64(answered) || string(m.URI) != tc.uri {
					t.Fatalf("%s: got %v %s %s, want ERROR %s for %d", tc.proc, m.Type, m.URI, describe(m), tc.uri, first+uint64(answered))
				}
				answered++
				return true
			case <-time.After(20 * time.Millisecond):
				return false
			}
		}
		for next() {
		}
		t.Logf("%s over %d entries: %d of %d pipelined answered at once", tc.proc, crowd, answered, n)
		if answered >= n {
			t.Fatalf("%s over %d entries: all %d pipelined calls answered at once, want those past the session's walk budget (%d entries) to wait", tc.proc, crowd, n, walkBurst)
		}
		for i := 0; i < 10 && answered < n; i++ {
			e.advance(time.Second)
			for next() {
			}
		}
		if answered != n {
			t.Fatalf("%s: %d of %d answered once the budget refilled", tc.proc, answered, n)
		}
	}
}
