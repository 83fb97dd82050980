package client

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A callee at Config.MaxInvocations decoded each INVOCATION's payload
// before it found it had to refuse it (wamp.error.unavailable), and so
// did one for a registration it no longer holds: callers pipelining large
// calls to a full callee (or a router flooding it) had it build, and
// throw away, Go values of up to 16 times each message (DecodeRatio)
// plus 64 KiB, for nothing: 30 refused invocations of 50 KB of small
// MsgPack integers allocated 27.7 MB (3.6 MB after). Those refusals come before the
// decode now.
func TestBusyRefusalBeforeDecode(t *testing.T) {
	const ints, refused = 50_000, 30
	s, c := setup(t, "rs", proto.MsgPack, func(cfg *Config) { cfg.MaxInvocations = 1 })
	release := make(chan struct{})
	defer close(release)
	register(t, s, c, "com.example.busy", 7, func(ctx context.Context, inv *Invocation) (*Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	invoke(c, 1, 7, []any{"running"}, map[string]any{})
	for deadline := time.Now().Add(wait); ; {
		s.mu.Lock()
		n := s.handlers
		s.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first handler did not start")
		}
		time.Sleep(time.Millisecond)
	}
	pad := make([]any, ints)
	for i := range pad {
		pad[i] = i % 100
	}
	args := c.raw([]any{pad})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range refused {
		reg := uint64(7)
		if i%2 == 1 {
			reg = 99 // not registered
		}
		c.send(&proto.Message{Type: proto.CodeInvocation, Request: uint64(100 + i), ID: reg, Dict: c.raw(map[string]any{}), Args: args})
		m := c.expect(proto.CodeError)
		eq(t, "refusal", string(m.URI), proto.URIUnavailable)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d refused invocations of %d bytes: %d bytes allocated", refused, len(args.B), alloc)
	if alloc > uint64(refused*len(args.B)*4) {
		t.Fatalf("%d refused invocations of %d bytes allocated %d bytes: their payloads were decoded", refused, len(args.B), alloc)
	}
}
