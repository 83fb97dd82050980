package route

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// joinLight joins n sessions to realm1 anonymously, spread over the
// shards, with peers whose inbox holds a few messages (WELCOME only: they
// subscribe to nothing), so that a test can hold thousands of sessions
// without thousands of 4,096-message inboxes. The HELLOs are queued
// without waiting for each, then every WELCOME is checked.
func (e *env) joinLight(n int) {
	e.t.Helper()
	var enc proto.Encoder
	hello, err := enc.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: raw(e.t, proto.MsgPack, map[string]any{"roles": allFeatures})})
	if err != nil {
		e.t.Fatal(err)
	}
	peers := make([]*testPeer, n)
	for i := range peers {
		k := i % len(e.execs)
		sh, x := e.r.Shard(k), e.execs[k]
		e.conns++
		p := &testPeer{ser: proto.MsgPack, in: make(chan *proto.Message, 4), sh: sh, exec: x, remote: fmt.Sprintf("light-%d", e.conns)}
		peers[i] = p
		if err := x.Execute(func() { p.sess = sh.Open(p); sh.Receive(p.sess, hello) }); err != nil {
			e.t.Fatal(err)
		}
	}
	for i, p := range peers {
		select {
		case m := <-p.in:
			if m.Type != proto.CodeWelcome {
				e.t.Fatalf("session %d: got %v, want WELCOME", i, m.Type)
			}
		case <-time.After(20 * time.Second):
			e.t.Fatalf("session %d: no WELCOME", i)
		}
	}
}

// countWait is how long a count is waited for. The env's clock is
// fake and stands still, so the walk budget never refills: a count that
// waits for it is never answered, however long the wait, and this bound
// is no measure of speed (it was 50 ms, a timing assertion a loaded
// machine running -race can miss).
const countWait = 10 * time.Second

// TestSessionCountDoesNotWalkTheRealm: wamp.session.count, the one meta
// procedure the shipped configurations grant anonymous clients, copied
// every session of the realm out of its table under the realm's lock
// and visited each, and was charged so in the session's walk budget (8
// entries a session): past 8,192 sessions one count cost more than the
// whole burst, so a client counting now and then waited for its answers
// (at 100,000 sessions 1.5 s each: a dashboard polling every second fell
// further behind at each poll, and its get_retained SUBSCRIBEs waited
// behind the debt too). The realm now keeps how many members each role
// has: a count, filtered by roles or not, is a look-up, answered at once.
func TestSessionCountDoesNotWalkTheRealm(t *testing.T) {
	e := newEnv(t, 2, nil)
	const n = 400
	e.joinLight(n)
	a := e.join(proto.JSON)
	b := e.joinAs(proto.JSON, "bob")
	// What the budget holds of a session's burst (65,536 entries) after
	// one count in a realm of 8,192 sessions, as it was charged: 1/64 of
	// it, where a count here was charged 3,208 entries (8 a session).
	a.exec.do(func() {
		a.sess.walks.refill(e.r.now())
		a.sess.walks.tokens = walkBurst / 64
	})
	const calls = 8
	var reqs []uint64
	for i := 0; i < calls; i++ {
		reqs = append(reqs, a.call("wamp.session.count", nil, nil, nil))
		reqs = append(reqs, a.call("wamp.session.count", nil, []any{[]any{"anonymous", "nobody"}}, nil))
		reqs = append(reqs, a.call("wamp.session.count", nil, nil, map[string]any{"filter_authroles": []any{"nobody"}}))
	}
	want := []int64{n + 1, n + 1, 0}
	for i, req := range reqs {
		select {
		case m := <-a.peer.in:
			if m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != want[i%3] {
				t.Fatalf("count %d: got %s, want RESULT %d for request %d", i, describe(m), want[i%3], req)
			}
		case <-time.After(countWait):
			t.Fatalf("%d of %d pipelined wamp.session.count calls answered at once in a realm of %d sessions: the rest wait for the walk budget", i, len(reqs), n+2)
		}
	}
	// Counts follow sessions leaving and joining, by role.
	if got := b.callMeta("wamp.session.count", []any{[]any{"user"}}, nil); got != int64(1) {
		t.Fatalf("users %v, want 1", got)
	}
	b.goodbye()
	if got := a.callMeta("wamp.session.count", []any{[]any{"user"}}, nil); got != int64(0) {
		t.Fatalf("users after bob left %v, want 0", got)
	}
	a.drop()
	c := e.join(proto.JSON)
	if got := c.callMeta("wamp.session.count", nil, nil); got != int64(n+1) {
		t.Fatalf("count %v, want %d", got, n+1)
	}
}

// TestMeshSessionCountChargedItsAnswers: on a mesh, the other nodes'
// answers to a wamp.session.count were charged the sessions they counted
// (8 entries each, as for a walk of them), though each node's count is a
// look-up: a count of a mesh of 100,000 sessions still cost a session 1.5
// s of its budget. It is charged what a gather costs, its answers' bytes
// and each node asked.
func TestMeshSessionCountChargedItsAnswers(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	const n = 2000 // 16,000 entries at 8 a session
	es[1].joinLight(n)
	a := es[0].join(proto.JSON)
	mm.sync()
	a.exec.do(func() {
		a.sess.walks.refill(es[0].r.now())
		a.sess.walks.tokens = walkBurst / 16
	})
	const calls = 8
	var reqs []uint64
	for i := 0; i < calls; i++ {
		reqs = append(reqs, a.call("wamp.session.count", nil, nil, nil))
	}
	mm.sync()
	for i, req := range reqs {
		select {
		case m := <-a.peer.in:
			if m.Type != proto.CodeResult || m.Request != req || argsOf(m)[0] != int64(n+1) {
				t.Fatalf("count %d: got %s, want RESULT %d for request %d", i, describe(m), n+1, req)
			}
		case <-time.After(countWait):
			t.Fatalf("%d of %d pipelined wamp.session.count calls answered at once on a mesh of %d sessions: the rest wait for the walk budget", i, calls, n+1)
		}
	}
}
