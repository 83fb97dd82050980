package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// bigRoleFilter returns a filter_authroles list of about 60 KB (10,159
// short roles, within the meta calls' 64 KiB of arguments).
func bigRoleFilter() []any {
	var roles []any
	for i, size := 0, 0; size < 60000; i++ {
		r := fmt.Sprintf("r%d", i)
		roles = append(roles, r)
		size += len(r) + 1
	}
	return roles
}

// wamp.session.count and wamp.session.list read their filter_authroles
// into a set and look each role up (count) or each session's role in it
// (list): about 3-4 ms for a filter of 10,159 roles on this host, decoded
// on each node of a mesh and run on its shard 0. They were charged one
// entry (count) or the realm's sessions (list) whatever the filter's
// length: on one node a session's burst paid for 8,192 such counts with
// the clock stopped, and on a mesh each other node answered 469 of 480
// (charged its answer's bytes and meshAskCost), about 1.6 s of its shard
// 0 for one session's burst (160 of 160 in this test's two rounds). A filter now counts one entry per role
// (as a listed entry, metaEntryCost), here and in what the other nodes
// report they walked.
func TestRoleFilterCharged(t *testing.T) {
	roles := bigRoleFilter()
	for _, proc := range []string{"wamp.session.count", "wamp.session.list"} {
		for _, kw := range []bool{false, true} {
			args, kwargs := []any{roles}, map[string]any(nil)
			if kw {
				args, kwargs = nil, map[string]any{"filter_authroles": roles}
			}
			t.Run(fmt.Sprintf("%s/keyword=%v/one node", proc, kw), func(t *testing.T) {
				e := newEnv(t, 1, nil)
				att := e.join(proto.MsgPack)
				e.advance(time.Minute) // the budget full; the clock stops here
				const n = 40
				for range n {
					att.sendAsync(&proto.Message{Type: proto.CodeCall, Request: att.nextReq(), Dict: att.opts(nil),
						URI: []byte(proc), Args: raw(t, proto.MsgPack, args), Kwargs: kwRaw(t, kwargs)})
				}
				e.sync()
				results, refused := answeredAtOnce(att)
				t.Logf("%d pipelined %s with %d roles and the clock stopped: %d answered at once, %d refused", n, proc, len(roles), results, refused)
				// Each costs more than the burst: the first is answered,
				// the others wait for the budget.
				if results > 1 {
					t.Fatalf("%d pipelined %s with a filter of %d roles answered at once with the clock stopped, want 1 (each costs more than the session's burst)", results, proc, len(roles))
				}
			})
			t.Run(fmt.Sprintf("%s/keyword=%v/mesh", proc, kw), func(t *testing.T) {
				mm, es := newMemMesh(t, 2, 1, nil)
				e := es[0]
				att := e.join(proto.MsgPack)
				es[1].join(proto.MsgPack)
				mm.sync()
				e.advance(time.Minute)
				q0 := mm.nodes[0].queries.Load()
				const rounds, perRound = 2, maxSessionGathers + maxSessionGatherQueue
				for range rounds {
					for range perRound {
						att.sendAsync(&proto.Message{Type: proto.CodeCall, Request: att.nextReq(), Dict: att.opts(nil),
							URI: []byte(proc), Args: raw(t, proto.MsgPack, args), Kwargs: kwRaw(t, kwargs)})
					}
					mm.sync()
					answeredAtOnce(att)
				}
				asked := mm.nodes[0].queries.Load() - q0
				// The burst pays for none whole: the first is asked, and
				// its debt then holds the others back.
				lim := int64(2 * maxSessionGathers)
				t.Logf("%d calls of %s with %d roles and the clock stopped: node B answered %d (limit %d)", rounds*perRound, proc, len(roles), asked, lim)
				if asked > lim {
					t.Fatalf("%s with a filter of %d roles from a session on node A made node B read it %d times with the clock stopped; the walk budget allows %d", proc, len(roles), asked, lim)
				}
			})
		}
	}
}

func kwRaw(t *testing.T, kwargs map[string]any) proto.Raw {
	if kwargs == nil {
		return proto.Raw{}
	}
	return raw(t, proto.MsgPack, kwargs)
}
