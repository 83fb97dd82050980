package route_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// TestKillCancelEndsWhenCalleeIgnoresInterrupt: a call canceled in kill
// mode waits for its callee's answer to the INTERRUPT (WAMP), but not for
// ever: a callee that never answers one (Autobahn|Python 22.7.1 does not)
// held the call, counted in the caller's calls_in_flight and
// calls_in_flight_total, for as long as the caller's session lasted,
// while the Go client gave up on it after ReplyTimeout and no one waited
// for it. Past killWait the router ends it as in killnowait: the caller
// gets ERROR wamp.error.canceled, and the callee's late answer is dropped.
func TestKillCancelEndsWhenCalleeIgnoresInterrupt(t *testing.T) {
	clk := newStepClock()
	cl := startClockedLoops(t, 1, clk, nil)
	callee := dialRawWAMP(t, cl.addr, "realm1", rawRoles)
	callee.send([]any{64, 1, map[string]any{}, "com.stuck"})
	if m := callee.recv(); m[0] != float64(65) {
		t.Fatalf("REGISTER answered %v", m)
	}
	caller := cl.dialWith(client.Config{ReplyTimeout: 300 * time.Millisecond})
	inFlight := func() int64 {
		tr, err := cl.r.Traffic(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tr.CallsInFlight
	}
	const n = 3
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := caller.Call(ctx, "com.stuck", []any{i}, nil, &client.CallOptions{CancelMode: "kill"})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v, want the context's deadline (the callee ignores INTERRUPT)", i, err)
		}
		if m := callee.recv(); m[0] != float64(68) {
			t.Fatalf("call %d: the callee got %v, want INVOCATION", i, m)
		}
		if m := callee.recv(); m[0] != float64(69) || m[2].(map[string]any)["mode"] != "kill" {
			t.Fatalf("call %d: the callee got %v, want INTERRUPT kill", i, m)
		}
	}
	if got := inFlight(); got != n {
		t.Fatalf("%d calls in flight, want %d (the canceled calls wait for the callee)", got, n)
	}
	clk.add(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for inFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the kill CANCELs, %d calls are still held for a callee that ignores INTERRUPT, their caller long gone from them", inFlight())
		}
		cl.r.Tick(time.Second) // the timer goroutine sleeps on the real clock
		time.Sleep(20 * time.Millisecond)
	}
	// The session goes on: a call of its own is answered.
	if _, err := caller.Call(context.Background(), "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}
