package client

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A progressive call invocation answered early (the handler's YIELD came
// before the final chunk), then an INTERRUPT for it: the caller's CANCEL
// reached the router before the YIELD. The INTERRUPT took the id out of
// the invocations answered early, so the chunks the router still
// forwarded (edgewamp forwards a caller's chunks after a kill-mode
// CANCEL) were taken for a new invocation: the handler ran a second time,
// on a fragment of the call, its answer going nowhere.
func TestInterruptAfterEarlyAnswerLateChunksDropped(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	var calls atomic.Int32
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		if calls.Add(1) > 1 {
			<-ctx.Done() // a second run: held, so that it shows in s.invs
			return nil, ctx.Err()
		}
		return &Result{Args: []any{"early"}}, nil
	}
	register(t, s, c, "com.example.up", 12, h, nil)
	invoke(c, 61, 12, []any{1}, map[string]any{"progress": true})
	eq(t, "early answer", c.expect(proto.CodeYield).Request, uint64(61))
	in := &proto.Message{Type: proto.CodeInterrupt, Request: 61}
	in.Opt.SetString(proto.KeyMode, "kill")
	c.send(in)
	register(t, s, c, "com.example.marker", 13, func(context.Context, *Invocation) (*Result, error) { return &Result{}, nil }, nil)
	// rerun tells whether the handler of 61 runs again once the reader
	// has handled the chunks sent before: it handles messages in order,
	// so once the marker invocation behind them is answered, they were.
	marker := uint64(100)
	rerun := func() bool {
		marker++
		invoke(c, marker, 13, nil, map[string]any{})
		eq(t, "marker answer", c.expect(proto.CodeYield).Request, marker)
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.invs[61]
		return ok
	}
	invoke(c, 61, 12, []any{2}, map[string]any{"progress": true})
	if rerun() {
		t.Fatal("a chunk after the INTERRUPT of an invocation answered early started its handler again")
	}
	invoke(c, 61, 12, []any{3}, map[string]any{})
	if rerun() {
		t.Fatal("the final chunk after the INTERRUPT of an invocation answered early started its handler again")
	}
	eq(t, "handler runs", calls.Load(), int32(1))
}
