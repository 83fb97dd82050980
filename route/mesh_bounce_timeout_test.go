package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A call sent back undelivered and sent on to another node (meshBounced,
// a call that is not rerouteable: a single registration's, or, here, one
// whose procedure had one callee in the mesh when it was called; a single
// one on two nodes is the conflict a heal revokes, which this harness
// resolves before the call could bounce) carries the time left of its timeout, as a
// rerouted call does, not the timeout it was first sent with: the callee
// (forward_timeout) is told how long the caller's node still waits. Before,
// the envelope went on as it was, so a callee reached 4 s into a 10 s
// timeout was told 10 s and the caller's node interrupted it at 6.
func TestMeshBouncedCallCarriesTimeLeft(t *testing.T) {
	mm, es := newMemMesh(t, 3, 1, nil)
	b := es[1].join(proto.JSON)
	b.register("com.rr", map[string]any{"invoke": "roundrobin", "forward_timeout": true})
	mm.sync()
	// B's callee leaves, and A does not know yet.
	mm.hold = true
	b.goodbye()
	mm.sync()
	a := es[0].join(proto.JSON)
	// B's dispatcher is held while A sends the call to it (A knows only
	// B's callee: the call is not rerouteable).
	gate := make(chan struct{})
	mm.nodes[1].dispatch(func() { <-gate })
	req := a.nextReq()
	a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: req, Dict: a.opts(map[string]any{"timeout": 10000}), URI: []byte("com.rr")})
	es[0].sync()
	// Then A's shard is held while C's callee registers (A hears of it, not
	// yet of B's leaving) and B sends the call back; the clock moves 4 s.
	release := stallExec(t, es[0], 0)
	mm.mu.Lock()
	mm.hold = false // B's leaving stays held
	mm.mu.Unlock()
	c := es[2].join(proto.JSON)
	c.register("com.rr", map[string]any{"invoke": "roundrobin", "forward_timeout": true})
	close(gate)
	mm.syncExcept(0)
	es[0].clock.add(4 * time.Second)
	release()
	mm.sync()
	inv := c.expect(proto.CodeInvocation)
	if es[0].r.MeshStats().Bounced.Load() == 0 {
		t.Fatal("the call was not bounced")
	}
	if ms := inv.Opt.Uint(proto.KeyTimeout); ms == 0 || ms > 6000 {
		t.Fatalf("forwarded timeout %d ms after a bounce 4 s into 10 s, want at most 6000", ms)
	}
	c.yield(inv.Request, nil, nil)
	if r := a.expect(proto.CodeResult); r.Request != req {
		t.Fatalf("result %s", describe(r))
	}
	mm.release()
	mm.sync()
	assertNothingPending(t, mm)
}
