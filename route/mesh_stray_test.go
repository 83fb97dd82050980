package route

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Each progressive result of a call the caller's node had ended was
// answered by an interrupt (ebe2d3d), so a callee streaming into a node
// after its interrupt was lost stops: one 25-byte envelope for each
// result, of 12 bytes at least, back across the link for as long as the
// results came (10,000 empty results of one call: 10,000 interrupts,
// 250,000 bytes, twice what came in, on an edge's uplink). The results
// of one call are answered once per stopRetryEvery now: a lost interrupt
// is still sent again at the first result past it.
func TestMeshStrayProgressInterruptedOncePerTurn(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := mm.nodes[0], mm.nodes[1]
	// Node A's sends are counted (memNode.sent): each is one interrupt
	// it sent (node B ignores them: it holds no such call).
	c := &carry{}
	stray := func(callID uint64, n int) int64 {
		before := a.sent.Load()
		for range n {
			// Node B's progressive result of a call node A no longer
			// has (no mcalls entry, as for an ended call).
			es[0].r.MeshDeliver(b.id, appendResult(nil, 0, callID, rsProgress, 0, "", "", c))
		}
		es[0].sync()
		return a.sent.Load() - before
	}
	if n := stray(777777, 10000); n != 1 {
		t.Fatalf("10,000 stray progressive results of one ended call: %d interrupts sent back, want 1", n)
	}
	if n := stray(888888, 100); n != 1 {
		t.Fatalf("100 stray results of another ended call: %d interrupts sent back, want 1", n)
	}
	// Past stopRetryEvery the next result is answered again: the first
	// interrupt may have been lost.
	es[0].clock.add(stopRetryEvery)
	if n := stray(777777, 100); n != 1 {
		t.Fatalf("100 stray results of the first call past stopRetryEvery: %d interrupts sent back, want 1", n)
	}
}

// An interrupt the mesh refused (node A's outbound queue full) for a
// stray progressive result marked its call as answered all the same, so
// that the call's further results within stopRetryEvery were not
// answered: a callee that streamed a burst and then waited for its
// INTERRUPT was held on its node, its invocation one of max_invocations,
// until its caller's timeout and a second (for ever without one). Only
// an interrupt the mesh took marks its call.
func TestMeshStrayInterruptRefusedSentAgain(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	a, b := mm.nodes[0], mm.nodes[1]
	c := &carry{}
	stray := func() {
		es[0].r.MeshDeliver(b.id, appendResult(nil, 0, 4242, rsProgress, 0, "", "", c))
		es[0].sync()
	}
	full := errors.New("outbound queue full")
	a.sendErr.Store(&full)
	stray()
	if n := a.refused.Load(); n != 1 {
		t.Fatalf("a stray result with the queue full: %d interrupts tried, want 1", n)
	}
	a.sendErr.Store(nil)
	before := a.sent.Load()
	stray()
	if n := a.sent.Load() - before; n != 1 {
		t.Fatalf("the next stray result once the queue took sends again: %d interrupts sent, want 1 (the first was refused)", n)
	}
	stray()
	if n := a.sent.Load() - before; n != 1 {
		t.Fatalf("a third stray result within stopRetryEvery: %d interrupts sent in all, want 1", n)
	}
}

// A call to another node's callee that timed out at its caller's node,
// whose interrupt was lost on its way (a link cut and restored within
// the peer timeout), is ended by the interrupt that answers its callee's
// next progressive result: that interrupt said wamp.error.canceled
// whatever ended the call, where the callee had been told
// wamp.error.timeout had the first one arrived. It carries the reason the
// call ended with now.
func TestMeshStrayInterruptCarriesTheCallsEnd(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.stream", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.stream", map[string]any{"timeout": 1000, "receive_progress": true}, nil, nil)
	mm.sync()
	inv := callee.expect(proto.CodeInvocation)
	lost := string(rune(envInterrupt))
	mm.nodes[0].dropKinds.Store(&lost)
	es[0].advance(1500 * time.Millisecond) // A's clock only: B's own bound is not due
	caller.expectError(proto.CodeCall, req, proto.URITimeout)
	mm.sync()
	mm.nodes[0].dropKinds.Store(nil)
	callee.yield(inv.Request, map[string]any{"progress": true}, []any{1})
	mm.sync()
	in := callee.expect(proto.CodeInterrupt)
	if r := string(in.Opt.Str(proto.KeyReason)); r != proto.URITimeout {
		t.Fatalf("the interrupt answering a stray result of a call that timed out says %q, want %s", r, proto.URITimeout)
	}
}

// A call without a timeout to another node's callee that waits for its
// INTERRUPT, canceled (killnowait) while the link to that node was cut
// (restored within the peer timeout: neither node takes the other for
// dead), lost its interrupt with the link, and the callee's node, which
// bounds only calls with a timeout (meshInvExpired), held the invocation
// (one of max_invocations) and its callee waited, for ever. The interrupt
// is sent once more past the peer timeout.
func TestMeshLostInterruptOfUntimedCallSentAgain(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.wait", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	req := caller.call("com.wait", nil, nil, nil)
	mm.sync()
	callee.expect(proto.CodeInvocation)
	lost := string(rune(envInterrupt))
	mm.nodes[0].dropKinds.Store(&lost)
	caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
	caller.expectError(proto.CodeCall, req, proto.URICanceled)
	mm.sync()
	mm.nodes[0].dropKinds.Store(nil)
	if p := es[1].r.MeshPending(); p != 1 {
		t.Fatalf("node B holds %d invocations after the lost interrupt, want 1", p)
	}
	es[1].advance(time.Hour) // B's clock: no bound of its own
	es[0].advance(4 * time.Second)
	mm.sync()
	select {
	case m := <-callee.peer.in:
		if m.Type != proto.CodeInterrupt {
			t.Fatalf("the callee got %s, want INTERRUPT", describe(m))
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the callee of a call without a timeout was never interrupted after its interrupt was lost (node B holds %d invocations)", es[1].r.MeshPending())
	}
	if p := es[1].r.MeshPending(); p != 0 {
		t.Fatalf("node B holds %d invocations, want 0", p)
	}
}

// The interrupts a shard keeps to send again (refused by the mesh:
// keepStop; of calls without a timeout, to repeat past the peer timeout:
// echoStop; a repeat refused: sendLateStops) are bounded (maxLostStops
// each), and past the bound were forgotten without a count or a line: an
// operator could not tell that a callee on another node was left holding
// an invocation. Each is counted (MeshStats.StopsDropped,
// EchoesDropped: edgewamp_mesh_messages_dropped_total) and the first of
// each 10 s logged at WARN.
func TestMeshInterruptBoundDropsCounted(t *testing.T) {
	t.Cleanup(func(n int) func() { return func() { maxLostStops = n } }(maxLostStops))
	maxLostStops = 4
	logs := &lockedBuf{}
	mm, es := newMemMesh(t, 2, 1, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	callee := es[1].join(proto.JSON)
	callee.register("com.wait", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	calls := func(n int) []uint64 {
		var reqs []uint64
		for range n {
			reqs = append(reqs, caller.call("com.wait", nil, nil, nil))
		}
		mm.sync()
		for range n {
			callee.expect(proto.CodeInvocation)
		}
		return reqs
	}
	cancel := func(reqs []uint64) {
		for _, req := range reqs {
			caller.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: caller.opts(map[string]any{"mode": "killnowait"})})
			caller.expectError(proto.CodeCall, req, proto.URICanceled)
		}
		mm.sync()
	}
	st := es[0].r.MeshStats()
	// Six calls without a timeout canceled: their interrupts sent, four
	// kept to repeat, two not.
	cancel(calls(6))
	for range 6 {
		callee.expect(proto.CodeInterrupt)
	}
	if e, s := st.EchoesDropped.Load(), st.StopsDropped.Load(); e != 2 || s != 0 {
		t.Fatalf("6 interrupts to repeat with room for 4: %d repeats and %d interrupts dropped counted, want 2 and 0", e, s)
	}
	// Six more canceled while the mesh refuses node A's sends: four kept
	// to send again, two forgotten.
	reqs := calls(6)
	full := errors.New("outbound queue full")
	mm.nodes[0].sendErr.Store(&full)
	cancel(reqs)
	if s := st.StopsDropped.Load(); s != 2 {
		t.Fatalf("6 refused interrupts with room for 4: %d dropped counted, want 2", s)
	}
	// The four repeats come due while the sends are still refused and
	// the refused ones fill their room: forgotten too.
	es[0].advance(4 * time.Second)
	mm.sync()
	if s := st.StopsDropped.Load(); s != 6 {
		t.Fatalf("4 repeats refused with no room left: %d interrupts dropped counted, want 6", s)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d WARN lines for the drops within 10 s, want 1:\n%s", n, logs.String())
	}
	mm.nodes[0].sendErr.Store(nil)
}
