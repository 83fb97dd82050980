package route

import (
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Calls that end (answered, canceled, their caller gone) before their
// timeouts leave their timers in the shard's heap, dead, until they are
// due or the heap has doubled since its last sweep: a caller that made
// many calls with long timeouts and left kept its session (the timers
// point to it, with its calls table at its peak) and the heap's array
// held until as many new timers came, or for good with timeouts that
// never come due. The dead are now swept once the calls ended since the
// last sweep are half the heap, and a swept heap gives back an array
// far larger than it needs.
func TestEndedCallsLeaveNoTimersHeld(t *testing.T) {
	e := newEnv(t, 1, nil)
	// A callee without call_canceling: the caller's leave sends it no
	// INTERRUPT (the harness's inbox holds 4,096 messages).
	callee := e.connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	caller := e.join(proto.JSON)
	callee.register("com.never", nil)
	const calls = 16384
	for range calls {
		caller.call("com.never", map[string]any{"timeout": uint64(1) << 40}, nil, nil)
		callee.expect(proto.CodeInvocation) // never answered
	}
	sh := e.r.Shard(0)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	gone := caller.sess
	caller.drop()
	e.sync()
	var held, n, c int
	e.execs[0].do(func() {
		n, c = len(sh.timers), cap(sh.timers)
		for _, tm := range sh.timers {
			if tm.sess == gone {
				held++
			}
		}
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %d -> %d KiB; timers %d (cap %d), %d of the departed caller", before.HeapAlloc>>10, after.HeapAlloc>>10, n, c, held)
	if held > 0 {
		t.Errorf("%d timers of %d ended calls still hold their departed caller's session", held, calls)
	}
	if c > 4*timerSweepMin {
		t.Errorf("the timer heap keeps an array of %d entries for %d timers", c, n)
	}
}

// Below timerSweepMin the heap was never swept for ended calls: callers
// that each made a call with a timeout that never comes due and left
// (up to 4,095 timers a shard) stayed held by their timers for good,
// each with its Session and what it holds. A departure sweeps once the
// ended calls are half the heap, whatever its size (the ends pay for it).
func TestDepartedCallersLeaveNoTimersHeld(t *testing.T) {
	e := newEnv(t, 1, nil)
	callee := e.connect(proto.JSON)
	callee.hello("realm1", map[string]any{"callee": map[string]any{}}, nil)
	callee.id = callee.expect(proto.CodeWelcome).ID
	callee.register("com.never", nil)
	const callers = 1000
	gone := map[*Session]bool{}
	var cs []*tc
	for range callers {
		c := e.join(proto.JSON)
		c.call("com.never", map[string]any{"timeout": uint64(1) << 40}, nil, nil)
		callee.expect(proto.CodeInvocation) // never answered
		gone[c.sess] = true
		cs = append(cs, c)
	}
	e.advance(time.Minute) // past the HELLO timeout: the heap holds the calls' timers
	for _, c := range cs {
		c.drop()
	}
	e.sync()
	sh := e.r.Shard(0)
	var held, n int
	e.execs[0].do(func() {
		n = len(sh.timers)
		for _, tm := range sh.timers {
			if gone[tm.sess] {
				held++
			}
		}
	})
	if held > 0 {
		t.Fatalf("%d of %d timers hold one of %d departed callers' sessions", held, n, callers)
	}
}
