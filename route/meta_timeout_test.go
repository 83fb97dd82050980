package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestMetaCallTimeoutWhileWaiting: a meta call that waits, for its walk
// turn or on a mesh for the other nodes' answers, is a call in flight and
// keeps its timeout (options.timeout, else rpc.call_timeout, capped by
// max_call_timeout): past it the caller gets ERROR wamp.error.timeout, as
// for any call, and the call is not run (its gathered answer is dropped).
// A waiting meta call used to ignore it: answered when its turn came,
// seconds after the caller's or the router's timeout.
func TestMetaCallTimeoutWhileWaiting(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxCallTimeout = 5 * time.Second })
	att := e.join(proto.JSON)
	att.exec.do(func() {
		b := &att.sess.walks
		b.refill(e.r.now())
		b.tokens = -10 * walkRate // ten seconds of debt
	})
	req := att.call("wamp.session.list", map[string]any{"timeout": 100}, nil, nil)
	noTimeout := att.call("wamp.session.count", nil, nil, nil) // capped at 5 s
	att.quiet()
	e.advance(200 * time.Millisecond)
	if m := recvWithin(t, att, time.Second); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URITimeout {
		t.Fatalf("a meta call waiting for its walk turn, 200 ms after its 100 ms timeout: %s, want ERROR %s", describe(m), proto.URITimeout)
	}
	att.quiet()
	e.advance(5 * time.Second)
	att.expectError(proto.CodeCall, noTimeout, proto.URITimeout) // max_call_timeout
	e.advance(10 * time.Second)
	att.quiet() // neither is run when its turn comes
	var n int
	att.exec.do(func() { n = len(att.sess.walks.q) })
	if n != 0 {
		t.Fatalf("%d walks still wait", n)
	}
	// The id is free again.
	att.callID(req, "wamp.session.count")
	if m := att.recv(); m.Type != proto.CodeResult || m.Request != req {
		t.Fatalf("a call with the timed-out id: %s", describe(m))
	}
}

// TestMeshMetaCallTimeoutWhileGathering: on a mesh, as above while the
// call waits for the other nodes' answers.
func TestMeshMetaCallTimeoutWhileGathering(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	att := e.join(proto.JSON)
	es[1].join(proto.JSON)
	mm.sync()
	mm.nodes[0].gatherHold.Store(true)
	defer mm.nodes[0].releaseGathers()
	req := att.call("wamp.session.count", map[string]any{"timeout": 100}, nil, nil)
	att.quiet()
	e.advance(200 * time.Millisecond)
	if m := recvWithin(t, att, time.Second); m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URITimeout {
		t.Fatalf("a meta call waiting for the other nodes, 200 ms after its 100 ms timeout: %s, want ERROR %s", describe(m), proto.URITimeout)
	}
	mm.nodes[0].releaseGathers()
	mm.sync()
	att.quiet() // its answer is dropped
}

// recvWithin waits up to d for c's next message.
func recvWithin(t *testing.T, c *tc, d time.Duration) *proto.Message {
	t.Helper()
	select {
	case m := <-c.peer.in:
		return m
	case <-time.After(d):
		t.Fatalf("session %d: no message within %v", c.id, d)
		return nil
	}
}
