package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// On a roundrobin registration, the calls that need a callee feature take
// turns among the callees that have it, and the other calls among all of
// them (pickCallee). Both took their turn from one counter: a caller
// alternating a plain call and a progressive call invocation had every
// progressive one go to the same capable callee (the counter odd each
// time: 20 of 20 to one of two), and every plain one to the callees of
// even place (4 each to 5 of 10, none to the others). Each kind now
// keeps its own turn.
func TestRoundRobinNeedAndPlainCallsKeepTheirOwnTurns(t *testing.T) {
	plainRoles := map[string]any{"callee": map[string]any{"features": map[string]any{"shared_registration": true}}}
	e := newEnv(t, 2, nil)
	var all []*tc
	for range 2 {
		c := e.joinWith(proto.JSON, pptFeatures())
		c.register("com.upload", map[string]any{"invoke": "roundrobin"})
		all = append(all, c)
	}
	for range 8 {
		c := e.joinWith(proto.JSON, plainRoles)
		c.register("com.upload", map[string]any{"invoke": "roundrobin"})
		all = append(all, c)
	}
	caller := e.joinWith(proto.MsgPack, pptFeatures())
	// took answers the one invocation the call made and says which callee
	// took it.
	took := func(i int, prog bool) int {
		e.sync()
		who := -1
		for j, c := range all {
			select {
			case inv := <-c.peer.in:
				if who >= 0 {
					t.Fatalf("call %d reached two callees", i)
				}
				who = j
				if prog {
					if m := c.expect(proto.CodeInvocation); m.Request != inv.Request {
						t.Fatalf("chunk for %d, want %d", m.Request, inv.Request)
					}
				}
				c.yield(inv.Request, nil, []any{"ok"})
			default:
			}
		}
		if who < 0 {
			t.Fatalf("call %d reached no callee: %s", i, describe(caller.recv()))
		}
		caller.expect(proto.CodeResult)
		return who
	}
	const rounds = 20
	prog := make([]int, 2)
	plain := make([]int, len(all))
	for i := range rounds {
		caller.call("com.upload", nil, []any{i}, nil)
		plain[took(i, false)]++
		req := caller.nextReq()
		caller.callChunk(req, "com.upload", true, i)
		caller.callChunk(req, "com.upload", false, i)
		w := took(i, true)
		if w > 1 {
			t.Fatalf("progressive call %d reached callee %d, which did not announce the feature", i, w)
		}
		prog[w]++
	}
	if prog[0] != rounds/2 || prog[1] != rounds/2 {
		t.Errorf("the progressive calls went %d and %d to the two callees that take them, want %d each", prog[0], prog[1], rounds/2)
	}
	for _, k := range plain {
		if k != rounds/len(all) {
			t.Errorf("the plain calls went %v to the callees, want %d each", plain, rounds/len(all))
			break
		}
	}
}
