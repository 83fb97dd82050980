package client

import (
	"context"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Config.MaxInvocations bounded the running Handlers by count only: the
// callers of a callee whose handlers take a while (or a hostile router)
// could make it hold 16,384 invocations of the router's largest message
// (16 MiB), decoded. Through a real router, 29 pipelined calls of 8 MiB
// from one caller held 236 MiB in the callee. Past
// Config.MaxInvocationBytes of running invocations (as received) an
// INVOCATION is refused wamp.error.unavailable, as one past
// MaxInvocations is; the bytes come back when a Handler returns.
func TestMaxInvocationBytesBoundsRunningHandlers(t *testing.T) {
	const limit, size, sent = 1 << 20, 300 << 10, 8
	s, c := setup(t, "rs", proto.MsgPack, func(cfg *Config) { cfg.MaxInvocationBytes = limit })
	started := make(chan *Invocation, sent)
	release := make(chan struct{})
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		started <- inv
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{Args: []any{len(inv.Args[0].([]byte))}}, nil
	}
	register(t, s, c, "com.example.big", 7, h, nil)
	payload := make([]byte, size)
	for i := range sent {
		invoke(c, uint64(100+i), 7, []any{payload}, map[string]any{})
	}
	// 3 × 300 KiB fit in 1 MiB, a fourth does not: the other five are
	// refused, in order, without a Handler.
	for i := 3; i < sent; i++ {
		m := c.expect(proto.CodeError)
		eq(t, "refused request", m.Request, uint64(100+i))
		eq(t, "refusal", string(m.URI), proto.URIUnavailable)
	}
	if n := len(started); n != 3 {
		t.Fatalf("%d handlers started, want 3 (%d bytes of invocations within MaxInvocationBytes %d)", n, 3*size, limit)
	}
	close(release)
	for range 3 {
		y := c.expect(proto.CodeYield)
		args, _ := c.payload(y)
		eq(t, "yield", args, []any{int64(size)})
	}
	// The bytes came back: the next one runs.
	invoke(c, 200, 7, []any{payload}, map[string]any{})
	c.expect(proto.CodeYield)
}
