package route_test

import (
	"fmt"
	"testing"
)

// TestBadTimeoutFirstChunkDropsLaterChunks: the first chunk of a
// progressive call invocation whose timeout is out of range (-1, what a
// JavaScript application computes from a missing setting) gets ERROR
// wamp.error.invalid_argument, and the chunks the caller sent behind it
// before it read that ERROR (the specification lets them omit the
// options) are dropped, as for any refused first chunk. Before, the
// refusal was not remembered: the next chunk was taken for a new call
// and reached the callee as an INVOCATION of its own, starting
// mid-stream, and the caller got a RESULT for the request it had been
// refused.
func TestBadTimeoutFirstChunkDropsLaterChunks(t *testing.T) {
	lr := startLoops(t, 1)
	callee := dialRawWAMP(t, lr.addr, "realm1", rawRoles)
	callee.send([]any{64, 1, map[string]any{}, "com.upload"})
	if m := callee.recv(); m[0] != float64(65) {
		t.Fatalf("REGISTER answered %v", m)
	}
	caller := dialRawWAMP(t, lr.addr, "realm1", rawRoles)
	for i, bad := range []any{-1, nil, 1e300} {
		req := 10 * (i + 1)
		caller.send(
			[]any{48, req, map[string]any{"progress": true, "timeout": bad}, "com.upload", []any{"chunk 1"}},
			[]any{48, req, map[string]any{"progress": true}, "com.upload", []any{"chunk 2"}},
			[]any{48, req, map[string]any{}, "com.upload", []any{"chunk 3"}},
			[]any{48, req + 1, map[string]any{}, "com.upload", []any{"probe"}},
		)
		m := caller.recv()
		if m[0] != float64(8) || m[2] != float64(req) || m[4] != "wamp.error.invalid_argument" {
			t.Fatalf("timeout %v: the first chunk was answered %v, want ERROR invalid_argument", bad, m)
		}
		// The callee's next INVOCATION must be the probe's: the router
		// sends INVOCATIONs in the order of their CALLs.
		inv := callee.recv()
		if inv[0] != float64(68) || fmt.Sprint(inv[4]) != "[probe]" {
			t.Fatalf("timeout %v: the callee got %v before the probe's INVOCATION: a later chunk of the refused call started a call of its own", bad, inv)
		}
		callee.send([]any{70, inv[1], map[string]any{}, []any{"ok"}})
		if m := caller.recv(); m[0] != float64(50) || m[1] != float64(req+1) {
			t.Fatalf("timeout %v: the caller got %v, want the probe's RESULT", bad, m)
		}
	}
}

// TestBadTimeoutLaterChunkIgnored: a later chunk of a progressive call
// invocation takes its options from the first (WAMP: "items in the Details
// dictionary ... shall be based on the initiating progressive CALL only"),
// so an out-of-range timeout on it (a client that sends its options with
// every chunk, its timeout computed as NaN or -1 by then) is ignored as
// any other option there is: the chunk reaches the callee. Before, it
// ended the caller's session (ABORT wamp.error.protocol_violation), where
// the same timeout on a first chunk is refused with an ERROR since
// 2481aae.
func TestBadTimeoutLaterChunkIgnored(t *testing.T) {
	lr := startLoops(t, 1)
	callee := dialRawWAMP(t, lr.addr, "realm1", rawRoles)
	callee.send([]any{64, 1, map[string]any{}, "com.upload"})
	if m := callee.recv(); m[0] != float64(65) {
		t.Fatalf("REGISTER answered %v", m)
	}
	caller := dialRawWAMP(t, lr.addr, "realm1", rawRoles)
	caller.send(
		[]any{48, 7, map[string]any{"progress": true, "timeout": 5000}, "com.upload", []any{"chunk 1"}},
		[]any{48, 7, map[string]any{"progress": true, "timeout": -1}, "com.upload", []any{"chunk 2"}},
		[]any{48, 7, map[string]any{"timeout": nil}, "com.upload", []any{"chunk 3"}},
	)
	var inv any
	for i := 1; i <= 3; i++ {
		m := callee.recv()
		if m[0] != float64(68) || fmt.Sprint(m[4]) != fmt.Sprintf("[chunk %d]", i) {
			t.Fatalf("the callee got %v, want the INVOCATION of chunk %d", m, i)
		}
		inv = m[1]
	}
	callee.send([]any{70, inv, map[string]any{}, []any{"ok"}})
	if m := caller.recv(); m[0] != float64(50) || m[1] != float64(7) {
		t.Fatalf("the caller got %v, want the call's RESULT", m)
	}
}

// TestBadTimeoutLaterChunkPPTUnannounced: a later chunk of a progressive
// call invocation in payload passthru mode (ppt_scheme) from a caller
// that did not announce payload_passthru_mode ends its session (ABORT
// wamp.error.protocol_violation) whatever its timeout, as any CALL in the
// mode from such a caller does. Since later chunks with an out-of-range
// timeout are routed (TestBadTimeoutLaterChunkIgnored), one with -1 went
// past that check and reached a callee that announced the mode in it.
func TestBadTimeoutLaterChunkPPTUnannounced(t *testing.T) {
	lr := startLoops(t, 1)
	pptRoles := map[string]any{"callee": map[string]any{"features": map[string]any{
		"progressive_call_invocations": true, "call_canceling": true, "payload_passthru_mode": true}}}
	callee := dialRawWAMP(t, lr.addr, "realm1", pptRoles)
	callee.send([]any{64, 1, map[string]any{}, "com.upload"})
	if m := callee.recv(); m[0] != float64(65) {
		t.Fatalf("REGISTER answered %v", m)
	}
	caller := dialRawWAMP(t, lr.addr, "realm1", rawRoles) // no payload_passthru_mode
	caller.send(
		[]any{48, 7, map[string]any{"progress": true}, "com.upload", []any{"chunk 1"}},
		[]any{48, 7, map[string]any{"progress": true, "timeout": -1, "ppt_scheme": "x_custom"}, "com.upload", []any{"chunk 2"}},
	)
	if m := callee.recv(); m[0] != float64(68) || fmt.Sprint(m[4]) != "[chunk 1]" {
		t.Fatalf("the callee got %v, want the INVOCATION of chunk 1", m)
	}
	if m := callee.recv(); m[0] != float64(69) {
		t.Fatalf("the callee got %v, want INTERRUPT (its caller is gone)", m)
	}
	if m := caller.recv(); m[0] != float64(3) || m[2] != "wamp.error.protocol_violation" {
		t.Fatalf("the caller got %v, want ABORT protocol_violation (a chunk in payload passthru mode from a caller that did not announce it)", m)
	}
}
