package route

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// remoteWalkMesh is a mesh of two: node B holds 2,000 subscriptions (of
// one session), node A next to nothing, and an attacker session on A
// whose walk budget is full.
func remoteWalkMesh(t *testing.T) (*memMesh, *env, *tc) {
	t.Helper()
	mm, es := newMemMesh(t, 2, 1, nil)
	const entries = 2000
	c := es[1].join(proto.MsgPack)
	for i := range entries {
		c.subscribe("com.entry."+strconv.Itoa(i), nil)
	}
	mm.sync()
	att := es[0].join(proto.MsgPack)
	if l := att.callMeta("wamp.subscription.list", nil, nil); len(l.(map[string]any)["exact"].([]any)) != entries {
		t.Fatalf("listed %d, want %d", len(l.(map[string]any)["exact"].([]any)), entries)
	}
	es[0].advance(time.Minute) // the budget back
	return mm, es[0], att
}

// A meta call gathered from every node is charged to its caller's walk
// budget for this node's entries only: the other nodes' walks were not
// charged at all. A session on a node with small tables could make
// another node walk and encode its whole table, and its own loop decode
// and merge the answers, as fast as the answers came (16 gathers at a
// time, 64 more queued): 100 pipelined wamp.subscription.list calls from
// A, whose node holds nothing, had node B list its 2,000 subscriptions
// 80 times at once, where on one node the budget answers one at once and
// makes 16 wait. Now the other nodes' answers are charged too, by their
// bytes (about a listed entry's cost each), and the session's queued
// gathers wait for its budget to be paid.
func TestMeshRemoteWalksCharged(t *testing.T) {
	mm, e, att := remoteWalkMesh(t)
	q0 := mm.nodes[0].queries.Load()
	// All sent before any answer comes: 16 gathering, 64 waiting for a
	// turn, as a client's pipelined calls find them while B is slow.
	const n = maxSessionGathers + maxSessionGatherQueue
	mm.nodes[0].gatherHold.Store(true)
	for range n {
		att.call("wamp.subscription.list", nil, nil, nil)
	}
	mm.nodes[0].releaseGathers()
	for range 4 {
		mm.sync() // the answers, and any gather started by them
	}
	atOnce, refused := answeredAtOnce(att)
	walked := mm.nodes[0].queries.Load() - q0
	t.Logf("%d pipelined lists: %d answered at once (%d refused), B walked its 2,000 subscriptions %d times", n, atOnce, refused, walked)
	// The first 16 gather at once, and each answer that finds the budget
	// still positive (its burst) starts one more.
	if walked > 2*maxSessionGathers || atOnce > 2*maxSessionGathers {
		t.Fatalf("%d pipelined wamp.subscription.list from a session on A made B walk its 2,000 subscriptions %d times at once (%d answered); want at most %d (the session's 16 gathers at a time, and its burst), the rest waiting for its walk budget", n, walked, atOnce, 2*maxSessionGathers)
	}
	// None is lost: the waiting ones are answered as the budget refills.
	results, more := drainMeta(t, att, n-atOnce-refused, func() {
		e.advance(time.Second)
		mm.sync()
	})
	if results+atOnce != n || refused+more != 0 {
		t.Fatalf("%d answered and %d refused of %d, want all answered", results+atOnce, refused+more, n)
	}
}

// A CANCEL does not take the charge away: a call canceled at once, its
// gather still under way, was answered wamp.error.canceled and its
// session could send the next, each making B walk its table.
func TestMeshRemoteWalksChargedWhenCanceled(t *testing.T) {
	mm, _, att := remoteWalkMesh(t)
	q0 := mm.nodes[0].queries.Load()
	const n = 100
	for range n {
		req := att.call("wamp.subscription.list", nil, nil, nil)
		att.cancelID(req)
		mm.sync()
		answeredAtOnce(att) // drop the answers
	}
	walked := mm.nodes[0].queries.Load() - q0
	t.Logf("%d lists canceled at once: B walked its 2,000 subscriptions %d times", n, walked)
	if walked > 2*maxSessionGathers {
		t.Fatalf("%d wamp.subscription.list calls canceled at once made B walk its 2,000 subscriptions %d times without advancing the clock; want at most %d", n, walked, 2*maxSessionGathers)
	}
}

// wamp.session.get (or kill) of a session that is not on the caller's
// node asks every other node, which answers on its shard 0; the gather
// was charged only its answers' bytes (a no_such_session answer, a few
// dozen), and a session in debt still started a gather for each call as
// long as it had one of its 16 turns free: one session made 43,675 such
// calls in 3 s over NATS, about 14,500 queries a second onto each other
// node's shard 0. Each node asked now costs meshAskCost besides its
// answer, and the calls of a session in debt wait for it before they ask.
func TestMeshGatheredLookupsCharged(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	att := e.join(proto.MsgPack)
	e.advance(time.Minute) // the budget full; the clock stops here
	q0 := mm.nodes[0].queries.Load()
	const rounds, perRound = 40, maxSessionGathers + maxSessionGatherQueue
	sent, answered := 0, 0
	drain := func() {
		results, refused := answeredAtOnce(att)
		answered += results + refused
	}
	for range rounds {
		for range perRound {
			att.call("wamp.session.get", nil, []any{int64(12345)}, nil) // on no node
			sent++
		}
		mm.sync()
		drain()
	}
	asked := mm.nodes[0].queries.Load() - q0
	lim := int64(walkBurst/meshAskCost + 2*maxSessionGathers)
	t.Logf("%d wamp.session.get of an absent session with the clock stopped: node B answered %d queries (limit %d)", sent, asked, lim)
	if asked > lim {
		t.Fatalf("%d gets of an absent session made node B answer %d queries with the clock stopped; the walk budget allows %d", sent, asked, lim)
	}
	// A single lookup, the budget back, is answered at once. Those that
	// waited are answered first, each in its turn: all of them before
	// the lookup is sent, whose answer would otherwise be taken for one
	// of theirs. (A sync did not always bring them all: their four
	// rounds of 16 gathers take the four rounds of mm.sync, and the last
	// round's answers could reach the session after it, while its shard
	// waited for a CPU on a loaded machine; the lookup's answer was then
	// a waiting call's, 5 of 5 runs with node A's shard slowed.)
	e.advance(time.Minute)
	for deadline := time.Now().Add(20 * time.Second); answered < sent; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls answered, the budget back", answered, sent)
		}
		mm.sync()
		drain()
	}
	req := att.call("wamp.session.get", nil, []any{int64(12345)}, nil)
	mm.sync()
	select {
	case m := <-att.peer.in:
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URINoSuchSession {
			t.Fatalf("got %v %s, want no_such_session for request %d", m.Type, describe(m), req)
		}
	default:
		t.Fatal("a single wamp.session.get with the budget back was not answered at once")
	}
}
