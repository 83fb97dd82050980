package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A gathered meta call that visits every session of the realm on each
// node but lists few or none of them (wamp.session.list filtered by a role
// nobody has, wamp.session.kill_by_authid or kill_by_authrole of an authid
// or role nobody has) was charged for the other nodes' answers by their
// bytes and by the sessions they killed: a few dozen entries, where each
// node had copied and visited all of its sessions under the realm's lock
// on its shard 0 (on one node the same call is charged 8 entries per
// session visited). A session on a node of few sessions could make every
// other node walk all of its sessions hundreds of times in the walk
// budget's burst, and thousands of times a second after it. The other
// nodes now say how many sessions they visited, and the caller is charged
// for them as on one node.
func TestMeshRemoteSessionVisitsCharged(t *testing.T) {
	for _, tc := range []struct {
		proc string
		args []any
	}{
		{"wamp.session.list", []any{[]any{"nobody"}}},
		{"wamp.session.kill_by_authid", []any{"nobody"}},
		{"wamp.session.kill_by_authrole", []any{"nobody"}},
	} {
		t.Run(tc.proc, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			const sessions = 2000
			es[1].joinLight(sessions)
			e := es[0]
			att := e.join(proto.MsgPack)
			mm.sync()
			// The count of what a node walked stays between the nodes:
			// the caller gets the result as on one node.
			switch v := att.callMeta(tc.proc, tc.args, nil); v := v.(type) {
			case []any:
				if len(v) != 0 {
					t.Fatalf("%s %v: %v, want []", tc.proc, tc.args, v)
				}
			case int64:
				if v != 0 {
					t.Fatalf("%s %v: %v, want 0", tc.proc, tc.args, v)
				}
			default:
				t.Fatalf("%s %v: %#v", tc.proc, tc.args, v)
			}
			mm.sync()
			if all := att.callMeta("wamp.session.list", nil, nil).([]any); len(all) != sessions+1 {
				t.Fatalf("wamp.session.list: %d sessions, want %d", len(all), sessions+1)
			}
			e.advance(time.Minute) // the budget full; the clock stops here
			q0 := mm.nodes[0].queries.Load()
			const rounds, perRound = 6, maxSessionGathers + maxSessionGatherQueue
			for range rounds {
				for range perRound {
					att.call(tc.proc, nil, tc.args, nil)
				}
				mm.sync()
				answeredAtOnce(att)
			}
			walks := mm.nodes[0].queries.Load() - q0
			// Charged as on one node, 8 entries per session visited, the
			// burst pays for 2 walks of node B's sessions; the session's
			// 16 gathers under way complete before its debt applies.
			lim := int64(walkBurst/(sessions*metaEntryCost) + 2*maxSessionGathers)
			t.Logf("%d calls of %s with the clock stopped: node B visited its %d sessions %d times (limit %d)", rounds*perRound, tc.proc, sessions, walks, lim)
			if walks > lim {
				t.Fatalf("%s from a session on node A made node B visit its %d sessions %d times with the clock stopped; the walk budget allows %d", tc.proc, sessions, walks, lim)
			}
		})
	}
}
