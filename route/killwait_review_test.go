package route_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestKillCancelWaitWithinCallTimeout: a call with a 30 s timeout canceled
// in kill mode at 1 s, whose callee ignores the INTERRUPT, ends at 11 s
// with ERROR wamp.error.canceled (once), the callee is sent no second
// INTERRUPT, its late YIELD is dropped, the call is no longer counted, and
// the call's own timeout at 30 s does nothing more.
func TestKillCancelWaitWithinCallTimeout(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 1, clk, nil)
	callee := dialRawWAMP(t, cl.addr, "realm1", rawRoles)
	callee.send([]any{64, 1, map[string]any{}, "com.stuck"})
	if m := callee.recv(); m[0] != float64(65) {
		t.Fatalf("REGISTER answered %v", m)
	}
	caller := dialRawWAMP(t, cl.addr, "realm1", rawRoles)
	inFlight := func() int64 {
		tr, err := cl.r.Traffic(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tr.CallsInFlight
	}
	step := func(d time.Duration) {
		clk.add(d)
		for range 5 {
			cl.r.Tick(time.Second)
			time.Sleep(20 * time.Millisecond)
		}
	}
	caller.send([]any{48, 1, map[string]any{"timeout": 30000}, "com.stuck", []any{"x"}})
	inv := callee.recv()
	if inv[0] != float64(68) {
		t.Fatalf("the callee got %v, want INVOCATION", inv)
	}
	step(time.Second)
	caller.send([]any{49, 1, map[string]any{"mode": "kill"}})
	if m := callee.recv(); m[0] != float64(69) || m[1] != inv[1] {
		t.Fatalf("the callee got %v, want INTERRUPT", m)
	}
	step(8 * time.Second) // 9 s: still waiting for the callee
	if n := inFlight(); n != 1 {
		t.Fatalf("9 s in, %d calls in flight, want 1", n)
	}
	step(3 * time.Second) // 12 s: past the kill wait
	m := caller.recv()
	if m[0] != float64(8) || m[2] != float64(1) || m[4] != "wamp.error.canceled" {
		t.Fatalf("the caller got %v, want ERROR canceled for request 1", m)
	}
	if n := inFlight(); n != 0 {
		t.Fatalf("after the kill wait, %d calls in flight, want 0", n)
	}
	// The callee's late answer is dropped; the call's own timeout (30 s)
	// does nothing more.
	callee.send([]any{70, inv[1], map[string]any{}, []any{"late"}})
	step(25 * time.Second)
	caller.send([]any{48, 2, map[string]any{}, "com.stuck", []any{"probe"}})
	inv2 := callee.recv()
	if inv2[0] != float64(68) || fmt.Sprint(inv2[4]) != "[probe]" {
		t.Fatalf("the callee got %v, want the probe's INVOCATION (no second INTERRUPT)", inv2)
	}
	callee.send([]any{70, inv2[1], map[string]any{}, []any{"ok"}})
	if m := caller.recv(); m[0] != float64(50) || m[1] != float64(2) {
		t.Fatalf("the caller got %v, want the probe's RESULT", m)
	}
	if n := inFlight(); n != 0 {
		t.Fatalf("%d calls in flight, want 0", n)
	}
}
