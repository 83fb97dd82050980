package route

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// When the mesh cannot ask the other nodes (a node has its 1,024 gathers
// in flight, or its outbound queue is full), a meta call for the whole
// realm answered with this node's part only: wamp.session.count too low,
// wamp.session.kill of a session on another node "no such session". It
// now fails with wamp.error.unavailable, which a caller can retry.
func TestMeshMetaWhenGatherRefused(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := es[0].join(proto.JSON), es[1].join(proto.JSON)
	mm.sync()
	busy := errors.New("edge: busy")
	mm.nodes[0].gatherErr.Store(&busy)
	for _, c := range []struct {
		proc string
		args []any
	}{
		{"wamp.session.count", nil},
		{"wamp.session.list", nil},
		{"wamp.session.get", []any{b.id}},
		{"wamp.session.kill", []any{b.id}},
	} {
		req := a.call(c.proc, nil, c.args, nil)
		mm.sync()
		m := a.recv()
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
			t.Errorf("%s with the mesh busy: got %v %s, want ERROR %s", c.proc, m.Type, describe(m), proto.URIUnavailable)
		}
	}
	b.quiet() // not killed
	mm.nodes[0].gatherErr.Store(nil)
	req := a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != int64(2) {
		t.Fatalf("count once the mesh answers: %s", describe(m))
	}
}

// A meta call whose gather went without a node's answer (the node did not
// answer within the mesh's gather_timeout, or this node has not heard from
// it yet) answered "not found" for what that node holds: a wamp.session.kill
// from a node still forming its mesh said no_such_session of a session
// alive elsewhere. "Not found" now stands only when every node that could
// hold it answered; otherwise ERROR wamp.error.unavailable, naming the
// nodes. A session id carries its node's slot, so a session of a node that
// answered is still "no such session"; counts and lists stay partial.
func TestMeshMetaNotFoundWhileANodeIsMissing(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a, b, c := es[0].join(proto.JSON), es[1].join(proto.JSON), es[2].join(proto.JSON)
	c.subscribe("t.only.on.c", nil)
	mm.sync()
	// ids no session has, on B's and on C's slot
	onB := uint64(777)<<10 | uint64(MeshSlot("nodeB"))
	onC := uint64(777)<<10 | uint64(MeshSlot("nodeC"))
	if MeshSlot("nodeB") == MeshSlot("nodeC") {
		t.Fatal("the test needs nodes of different slots")
	}
	ask := func(proc string, args []any) *proto.Message {
		t.Helper()
		req := a.call(proc, nil, args, nil)
		mm.sync()
		m := a.recv()
		if m.Request != req {
			t.Fatalf("%s: answer to request %d, want %d", proc, m.Request, req)
		}
		return m
	}
	unavailable := func(proc string, args []any, says string) {
		t.Helper()
		m := ask(proc, args)
		if m.Type != proto.CodeError || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("%s %v: got %v %s, want ERROR %s", proc, args, m.Type, describe(m), proto.URIUnavailable)
		}
		if msg, _ := argsOf(m)[0].(string); !strings.Contains(msg, says) {
			t.Fatalf("%s %v: message %q does not say %q", proc, args, msg, says)
		}
	}
	noSession := func(args []any) {
		t.Helper()
		if m := ask("wamp.session.kill", args); m.Type != proto.CodeError || string(m.URI) != proto.URINoSuchSession {
			t.Fatalf("wamp.session.kill %v: got %v %s, want ERROR %s", args, m.Type, describe(m), proto.URINoSuchSession)
		}
	}

	mm.nodes[2].mute.Store(true) // C does not answer
	unavailable("wamp.session.kill", []any{c.id}, "node nodeC did not answer")
	unavailable("wamp.session.get", []any{c.id}, "nodeC")
	unavailable("wamp.session.kill", []any{onC}, "nodeC")
	unavailable("wamp.subscription.lookup", []any{"t.only.on.c"}, "nodeC")
	noSession([]any{onB}) // B answered: its slot's sessions are known
	m := ask("wamp.session.count", nil)
	if m.Type != proto.CodeResult || argsOf(m)[0] != int64(2) {
		t.Fatalf("count without C: %s, want the partial count 2", describe(m))
	}
	// The partial count says so in RESULT.Details.
	if d := dictOf(t, m); fmt.Sprint(d[partialKey]) != "map[missing:[nodeC] not_heard_from:false]" {
		t.Fatalf("count without C: details %v, want %s naming nodeC", d, partialKey)
	}
	c.quiet() // not killed

	mm.nodes[2].mute.Store(false)
	mm.nodes[0].unheard.Store(1) // a node A has not heard from may hold any id
	unavailable("wamp.session.kill", []any{onB}, "nodes this node has not heard from yet")
	if d := dictOf(t, ask("wamp.session.count", nil)); fmt.Sprint(d[partialKey]) != "map[missing:[] not_heard_from:true]" {
		t.Fatalf("count with a node not heard from: details %v", d)
	}
	mm.nodes[0].unheard.Store(0)
	if d := dictOf(t, ask("wamp.session.count", nil)); d[partialKey] != nil {
		t.Fatalf("a whole count: details %v, want no %s", d, partialKey)
	}
	noSession([]any{onB})
	noSession([]any{onC})
	if m := ask("wamp.subscription.lookup", []any{"t.only.on.c"}); m.Type != proto.CodeResult || argsOf(m)[0] == nil {
		t.Fatalf("lookup with every node answering: %s", describe(m))
	}
	if m := ask("wamp.session.kill", []any{c.id}); m.Type != proto.CodeResult {
		t.Fatalf("kill with every node answering: %s", describe(m))
	}
	mm.sync()
	if m := c.recv(); m.Type != proto.CodeGoodbye {
		t.Fatalf("the killed session got %v %s, want GOODBYE", m.Type, describe(m))
	}
	b.quiet()
}

// A node whose shard has stopped (it is shutting down) cannot run the
// others' meta queries. It answered them with nothing, which the asker
// read as "nothing here": a get or kill of one of its sessions said
// no_such_session. It now answers that it could not, and the asker counts
// it among the nodes that did not answer.
func TestMeshMetaNodeStoppingCountsAsMissing(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := es[0].join(proto.JSON), es[1].join(proto.JSON)
	mm.sync()
	exec := es[1].r.shards[0].exec.Swap(nil) // B's shard stops taking tasks
	t.Cleanup(func() { es[1].r.shards[0].exec.Store(exec) })
	req := a.call("wamp.session.get", nil, []any{b.id}, nil)
	mm.sync()
	m := a.recv()
	if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable || !strings.Contains(fmt.Sprint(argsOf(m)), "nodeB") {
		t.Fatalf("get of B's session with B's shard stopped: %v %s, want ERROR %s naming nodeB", m.Type, describe(m), proto.URIUnavailable)
	}
	req = a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	m = a.recv()
	if m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != int64(1) || fmt.Sprint(dictOf(t, m)[partialKey]) != "map[missing:[nodeB] not_heard_from:false]" {
		t.Fatalf("count with B's shard stopped: %v %s, details %v", m.Type, describe(m), dictOf(t, m))
	}
}

// A node that was stopped while other nodes' meta queries waited for it
// finds them when it runs again; their askers answered long ago (a kill
// of one of its sessions: wamp.error.unavailable, naming it). It ran them
// anyway, so a kill its caller was told had not been done ended the
// session later. A query that comes after its asker's deadline is now not
// run, but answered as not answered and counted; the drop of retained
// copies, due whenever it comes, still runs.
func TestMeshMetaLateQueryNotRun(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	a, c := es[0].join(proto.JSON), es[2].join(proto.JSON)
	mm.sync()
	late := func() uint64 { return es[2].r.MeshStats().LateQueries.Load() }

	mm.nodes[2].late.Store(true)
	req := a.call("wamp.session.kill", nil, []any{c.id}, nil)
	mm.sync()
	m := a.recv()
	if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable || !strings.Contains(fmt.Sprint(argsOf(m)), "node nodeC did not answer") {
		t.Fatalf("kill of C's session, its query late at C: %v %s, want ERROR %s naming nodeC", m.Type, describe(m), proto.URIUnavailable)
	}
	c.quiet() // not killed
	if n := late(); n != 1 {
		t.Fatalf("C's LateQueries %d after one late query, want 1", n)
	}
	req = a.call("wamp.session.count", nil, nil, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != int64(1) || fmt.Sprint(dictOf(t, m)[partialKey]) != "map[missing:[nodeC] not_heard_from:false]" {
		t.Fatalf("count, its query late at C (A's session alone, B has none): %v %s", m.Type, describe(m))
	}
	// The drop of retained copies runs however late it comes.
	q, err := encodeQuery("realm1", metaRetainedDrop, []any{uint64(1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	es[2].r.MeshQuery(q, time.Now().Add(-time.Minute), func(b []byte) { got <- b })
	if b := <-got; b != nil || late() != 2 {
		t.Fatalf("a late retained drop: answer %x, LateQueries %d, want no answer and 2 (the count's)", b, late())
	}

	mm.nodes[2].late.Store(false)
	req = a.call("wamp.session.kill", nil, []any{c.id}, nil)
	mm.sync()
	if m := a.recv(); m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("kill of C's session in time: %v %s", m.Type, describe(m))
	}
	mm.sync()
	if m := c.recv(); m.Type != proto.CodeGoodbye {
		t.Fatalf("the killed session got %v %s, want GOODBYE", m.Type, describe(m))
	}
	if n := late(); n != 2 {
		t.Fatalf("C's LateQueries %d, want 2", n)
	}
}

// A meta call gathered from every node (wamp.subscription.list,
// wamp.session.list/count, kill_by_*/kill_all ...) past the session's
// bound of gathers (16 under way, 64 waiting) is refused
// wamp.error.unavailable; it used to run its part on this node (runMeta:
// the handler) before its turn was taken (meshMetaCall), so each refused
// call walked the realm's table first: 800 refused wamp.subscription.list
// calls at 20,000 subscriptions held the loop 761-944 ms. Now the bound is
// checked first and a refusal costs next to nothing.
func TestMeshSubscriptionListWalkBeforeBound(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	const subs = 20000
	s := e.join(proto.MsgPack)
	for i := range subs {
		s.subscribe("com.sub."+strconv.Itoa(i), nil)
	}
	mm.sync()
	att := e.join(proto.MsgPack)
	// Hold the gathers, as a slow node would: the calls wait for answers.
	mm.nodes[0].gatherHold.Store(true)
	drain := func() (refused int) {
		for {
			select {
			case m := <-att.peer.in:
				if m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable {
					refused++
				}
				continue
			default:
			}
			return refused
		}
	}
	// The session's 16 gathers and 64 waiting, each walking this node's
	// subscriptions within the session's walk budget (the clock moved on
	// for each).
	const allowed = maxSessionGathers + maxSessionGatherQueue
	t0 := time.Now()
	for range allowed {
		att.call("wamp.subscription.list", nil, nil, nil)
		e.advance(time.Second)
	}
	tAllowed := time.Since(t0)
	if r := drain(); r != 0 {
		t.Fatalf("%d of the first %d refused", r, allowed)
	}
	var waiting, walking int
	att.exec.do(func() { waiting, walking = len(att.sess.asks.q), len(att.sess.walks.q) })
	if waiting != maxSessionGatherQueue || walking != 0 {
		t.Fatalf("%d gathers waiting their turn, %d calls their walk; want %d and 0", waiting, walking, maxSessionGatherQueue)
	}
	// Past them each is refused unavailable: that should cost next to
	// nothing, not a walk of the realm's subscriptions each.
	const more = 800
	t0 = time.Now()
	for range more {
		att.call("wamp.subscription.list", nil, nil, nil)
	}
	victim := e.join(proto.JSON)
	victim.subscribe("com.victim", nil)
	tMore := time.Since(t0)
	refused := drain()
	t.Logf("%d subscriptions: %d allowed lists took %v; %d more, refused unavailable (%d), and a victim's SUBSCRIBE took %v", subs, allowed, tAllowed, more, refused, tMore)
	if refused != more {
		t.Fatalf("%d of %d refused at once", refused, more)
	}
	if tMore > tAllowed {
		t.Fatalf("%d refused wamp.subscription.list calls held the loop %v (the %d allowed ones %v): each walked the realm's %d subscriptions before it was refused", more, tMore, allowed, tAllowed, subs)
	}
	// The held gathers are answered, every one of the allowed lists.
	mm.nodes[0].releaseGathers()
	mm.sync()
	results, refused := drainMeta(t, att, allowed, func() {
		e.advance(50 * time.Millisecond)
		mm.sync()
	})
	if results != allowed {
		t.Fatalf("%d of the %d allowed lists answered (%d refused)", results, allowed, refused)
	}
}

// A kill gathered from every node and refused for the session's bound of
// gathers does nothing: it used to kill this node's sessions first (its
// part, run before the bound was checked), and then answer
// wamp.error.unavailable, so a caller that retried, as told, killed again.
// (A kill of one session of this node needs no gather: it is done and
// answered here, TestMeshMetaSessionHereAnsweredHere; one of a session of
// another node is refused.)
func TestMeshMetaKillRefusedKillsNothing(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	att, bystander := e.join(proto.JSON), e.join(proto.JSON)
	elsewhere := es[1].join(proto.JSON)
	mm.sync()
	mm.nodes[0].gatherHold.Store(true)
	for range maxSessionGathers + maxSessionGatherQueue {
		att.call("wamp.session.count", nil, nil, nil)
	}
	att.quiet() // all waiting for the other node
	req := att.call("wamp.session.kill_all", nil, nil, nil)
	att.expectError(proto.CodeCall, req, proto.URIUnavailable)
	req = att.call("wamp.session.kill", nil, []any{elsewhere.id}, nil)
	att.expectError(proto.CodeCall, req, proto.URIUnavailable)
	mm.sync()
	bystander.quiet() // not killed
	elsewhere.quiet()
	bystander.subscribe("com.alive", nil)
	mm.nodes[0].releaseGathers()
	mm.sync()
	for range maxSessionGathers + maxSessionGatherQueue {
		att.expect(proto.CodeResult)
	}
}
