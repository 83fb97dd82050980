package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The invocations of a node's callers that another node held when the
// caller's node left the mesh were dropped there (meshNodeDown) without
// their timers (tmMeshInv, one per call with a timeout) being counted as
// ended: the dead timers stayed in the callee's shard's heap until they
// came due (a caller's timeout plus a second: for good with one that never
// comes due), each holding its callee's Session, also once the callee had
// left. They are counted, and swept as a caller's departure sweeps its
// calls' timers.
func TestCallerNodeDownLeavesNoInvocationTimersHeld(t *testing.T) {
	const calls = 1000
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.MaxMeshCalls = 2 * calls })
	// A callee without call_canceling: the node's departure sends it no
	// INTERRUPT (the harness's inbox holds 4,096 messages).
	callee := es[1].connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	callee.register("com.never", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	for range calls {
		caller.call("com.never", map[string]any{"timeout": uint64(1) << 40}, nil, nil)
	}
	mm.sync()
	for range calls {
		callee.expect(proto.CodeInvocation) // never answered
	}
	mm.kill(0)
	gone := callee.sess
	callee.drop()
	es[1].sync()
	sh := es[1].r.Shard(0)
	var held, n int
	es[1].execs[0].do(func() {
		n = len(sh.timers)
		for _, tm := range sh.timers {
			if tm.sess == gone {
				held++
			}
		}
	})
	if held > 0 {
		t.Fatalf("%d of %d timers hold the departed callee's session after the caller's node left", held, n)
	}
}

// A callee that left with invocations of other nodes' callers (each with
// its timer, tmMeshInv) left those timers in its shard's heap until they
// came due: its departure swept the heap for its own calls' timers only,
// and below timerSweepMin the ended invocations' count did not sweep it.
func TestDepartedCalleeLeavesNoInvocationTimersHeld(t *testing.T) {
	const calls = 1000
	mm, es := newMemMesh(t, 2, 1, func(c *Config) { c.MaxMeshCalls = 2 * calls })
	callee := es[1].connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	callee.register("com.never", nil)
	mm.sync()
	caller := es[0].join(proto.JSON)
	for range calls {
		caller.call("com.never", map[string]any{"timeout": uint64(1) << 40}, nil, nil)
	}
	mm.sync()
	for range calls {
		callee.expect(proto.CodeInvocation) // never answered
	}
	gone := callee.sess
	callee.drop()
	mm.sync()
	sh := es[1].r.Shard(0)
	var held, n int
	es[1].execs[0].do(func() {
		n = len(sh.timers)
		for _, tm := range sh.timers {
			if tm.sess == gone {
				held++
			}
		}
	})
	if held > 0 {
		t.Fatalf("%d of %d timers hold the departed callee's session", held, n)
	}
	for range calls {
		caller.expect(proto.CodeError) // the callee left
	}
}
