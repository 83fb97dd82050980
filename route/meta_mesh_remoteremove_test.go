package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.registration.remove_callee and wamp.subscription.remove_subscriber
// of a session of another node are carried out there (meshOwned): the
// session's node looks for it among the callees of the registration (the
// subscribers of the subscription on its loop), a walk of up to every
// session of the realm, as on one node, where the same call is charged one
// entry per callee (subscriber) it may visit (metaVisits). The caller's
// node was charged for the other nodes' answers by their bytes and
// meshAskCost alone: a session on node A that named node B's session that
// is no callee (subscriber) made B walk its list of 2,000 272-276 times in
// the walk budget's burst with the clock stopped, where one node's rule
// allows 32. Now the session's node's answer is charged meshScanMin.
func TestMeshRemoteRemoveVisitsCharged(t *testing.T) {
	for _, proc := range []string{"wamp.subscription.remove_subscriber", "wamp.registration.remove_callee"} {
		t.Run(proc, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			const crowd = 2000
			var id uint64
			for i := 0; i < crowd; i++ {
				c := es[1].join(proto.MsgPack)
				if proc == "wamp.subscription.remove_subscriber" {
					id = c.subscribe("com.crowd", nil)
				} else {
					id = c.register("com.crowd", map[string]any{"invoke": "roundrobin"})
				}
			}
			x := es[1].join(proto.MsgPack) // neither subscriber nor callee
			e := es[0]
			att := e.join(proto.MsgPack)
			mm.sync()
			want := proto.URINoSuchSubscription
			if proc == "wamp.registration.remove_callee" {
				want = proto.URINoSuchRegistration
			}
			req := att.call(proc, nil, []any{id, x.id}, nil)
			mm.sync()
			att.expectError(proto.CodeCall, req, want)

			e.advance(time.Minute) // the budget full; the clock stops here
			q0 := mm.nodes[0].queries.Load()
			const rounds, perRound = 6, maxSessionGathers + maxSessionGatherQueue
			for range rounds {
				for range perRound {
					att.call(proc, nil, []any{id, x.id}, nil)
				}
				mm.sync()
				answeredAtOnce(att)
			}
			walks := mm.nodes[0].queries.Load() - q0
			// Charged as on one node, an entry per callee (subscriber)
			// visited, the burst pays for walkBurst/crowd walks of node
			// B's list; the session's 16 gathers under way complete
			// before its debt applies.
			lim := int64(walkBurst/crowd + 2*maxSessionGathers)
			t.Logf("%d calls of %s with the clock stopped: node B walked its %d-entry list %d times (limit %d)", rounds*perRound, proc, crowd, walks, lim)
			if walks > lim {
				t.Fatalf("%s from a session on node A made node B walk its %d-entry list %d times with the clock stopped; the walk budget allows %d", proc, crowd, walks, lim)
			}
		})
	}
}
