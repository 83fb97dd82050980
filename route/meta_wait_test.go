package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// callID sends CALL uri with request id req.
func (c *tc) callID(req uint64, uri string) {
	c.t.Helper()
	c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(nil), URI: []byte(uri)})
}

// cancelID sends CANCEL for request id req.
func (c *tc) cancelID(req uint64) {
	c.t.Helper()
	c.send(&proto.Message{Type: proto.CodeCancel, Request: req, Dict: c.opts(nil)})
}

// expectProtocolViolation waits for ABORT wamp.error.protocol_violation.
func (c *tc) expectProtocolViolation() {
	c.t.Helper()
	if m := c.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		c.t.Fatalf("got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
}

// TestMetaCallWaitingForWalkTurnHoldsRequestID: a meta call that waits
// for its walk turn (walkbudget.go) was in no table of the session: a
// CANCEL of it was ignored (the RESULT came later all the same), and a
// second CALL with its request id was taken, the two answers sharing the
// id. Now the id is in use while it waits, as for any call in flight: a
// CANCEL answers wamp.error.canceled at once and the call is not run, and
// a CALL with the id is a protocol violation.
func TestMetaCallWaitingForWalkTurnHoldsRequestID(t *testing.T) {
	e := newEnv(t, 1, nil)
	att := e.join(proto.JSON)
	inDebt := func() {
		att.exec.do(func() {
			b := &att.sess.walks
			b.refill(e.r.now())
			b.tokens = -walkRate // a second of debt
		})
	}
	waiting := func() (n int) {
		att.exec.do(func() { n = len(att.sess.walks.q) })
		return n
	}

	inDebt()
	const a = 1000
	att.callID(a, "wamp.session.list")
	att.quiet()
	if n := waiting(); n != 1 {
		t.Fatalf("%d calls wait for their walk turn, want 1", n)
	}
	att.cancelID(a)
	att.expectError(proto.CodeCall, a, proto.URICanceled)
	// The id is free again: a new call with it is answered once, and the
	// canceled one never.
	att.callID(a, "wamp.session.count")
	att.quiet()
	e.advance(2 * time.Second)
	if m := att.expect(proto.CodeResult); m.Request != a || len(argsOf(m)) != 1 || toInt(argsOf(m)[0]) != 1 {
		t.Fatalf("got RESULT %s, want the count (1) for request %d", describe(m), a)
	}
	att.quiet()
	if n := waiting(); n != 0 {
		t.Fatalf("%d calls still wait", n)
	}

	// A CALL with the id of a meta call still waiting.
	inDebt()
	const b = 2000
	att.callID(b, "wamp.registration.list")
	att.quiet()
	att.callID(b, "com.example.proc")
	att.expectProtocolViolation()
}

// TestMeshMetaCallGatherHoldsRequestID: on a mesh, a meta call waiting
// for the other nodes' answers holds its request id as well: a CANCEL
// answers wamp.error.canceled at once and the gathered answer is dropped;
// a CALL with the id is a protocol violation.
func TestMeshMetaCallGatherHoldsRequestID(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	att := es[0].join(proto.JSON)
	es[1].join(proto.JSON)
	mm.sync()
	mm.nodes[0].gatherHold.Store(true)

	const a = 1000
	att.callID(a, "wamp.session.count")
	mm.sync()
	att.quiet()
	att.cancelID(a)
	att.expectError(proto.CodeCall, a, proto.URICanceled)
	mm.nodes[0].releaseGathers()
	mm.sync()
	att.quiet()

	// The id free again, a call with it is answered for the whole mesh.
	att.callID(a, "wamp.session.count")
	mm.sync()
	if m := att.expect(proto.CodeResult); m.Request != a || len(argsOf(m)) != 1 || toInt(argsOf(m)[0]) != 2 {
		t.Fatalf("got RESULT %s, want the count (2) for request %d", describe(m), a)
	}

	mm.nodes[0].gatherHold.Store(true)
	const b = 2000
	att.callID(b, "wamp.session.list")
	mm.sync()
	att.quiet()
	att.callID(b, "wamp.session.count")
	att.expectProtocolViolation()
	mm.nodes[0].releaseGathers()
	mm.sync()
}
