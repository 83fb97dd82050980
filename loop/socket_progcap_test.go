package loop

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A callee streaming progressive results to a caller that does not read
// ends that call, not the caller's session: past the caller's high_water
// a progressive RESULT is refused as an INVOCATION is, the caller gets
// ERROR wamp.error.unavailable for the call and the callee INTERRUPT
// (killnowait). The caller's other calls and subscriptions stay, and a
// final RESULT still goes to it under hard_limit. Before, progressive
// results were never refused: 64 KiB chunks took the caller's backlog
// past hard_limit and its whole session was closed as a slow consumer.
func TestSocketProgressiveResultsToStalledCallerEndOnlyTheCall(t *testing.T) {
	t.Parallel()
	const chunk, chunks = 64 << 10, 64 // 4 MiB in all, 4 × bpHardLimit
	s := backpressureServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	callee := s.dial("rs", proto.MsgPack)
	blob := make([]byte, chunk)
	var sent atomic.Int64
	ended := make(chan error, 1)
	if _, err := callee.Register(ctx, "com.stream", func(hctx context.Context, inv *client.Invocation) (*client.Result, error) {
		defer func() { ended <- context.Cause(hctx) }()
		for range chunks {
			if hctx.Err() != nil {
				return nil, hctx.Err()
			}
			if err := inv.SendProgress([]any{blob}, nil); err != nil {
				return nil, err
			}
			sent.Add(1)
			time.Sleep(time.Millisecond) // let the router read it
		}
		// Wait (bounded) to be told: the caller is gone or backlogged.
		select {
		case <-hctx.Done():
		case <-time.After(10 * time.Second):
		}
		return &client.Result{Args: []any{"done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := callee.Register(ctx, "com.blob", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{blob}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}

	// The caller: announces progressive results, subscribes, then calls
	// com.stream and reads nothing.
	c := dialTCP(t, s.url, 4096)
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	shrinkRouterSendBuffer(t, c, 4096)
	p := newWAMP(t, w, proto.MsgPack)
	roles := map[string]any{"caller": map[string]any{"features": map[string]any{"progressive_call_results": true}},
		"subscriber": map[string]any{}}
	w.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"),
		Dict: rawValue(t, proto.MsgPack, map[string]any{"roles": roles})}))
	p.expect(proto.CodeWelcome)
	p.subscribe("com.topic")
	sessions := s.r.SessionCount()
	streamReq := p.nextReq()
	w.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeCall, Request: streamReq,
		Dict: rawValue(t, proto.MsgPack, map[string]any{"receive_progress": true}), URI: []byte("com.stream")}))

	var cause error
	select {
	case cause = <-ended:
	case <-ctx.Done():
		t.Fatal("the callee's stream never ended")
	}
	t.Logf("callee sent %d of %d chunks of %d KiB; its context ended with %v", sent.Load(), chunks, chunk>>10, cause)
	if !s.openAt(c) || s.r.SessionCount() != sessions {
		t.Fatalf("the caller's connection was closed (%d sessions, were %d): %d progressive results of %d KiB ended the caller's session, not the call",
			s.r.SessionCount(), sessions, sent.Load(), chunk>>10)
	}
	if !errors.Is(cause, client.ErrInterrupted) {
		t.Fatalf("the callee's context ended with %v, want an INTERRUPT", cause)
	}
	// A final RESULT to the caller, past high_water and under hard_limit,
	// is delivered.
	blobReq := p.nextReq()
	w.send(p.callMsg(blobReq, "com.blob", nil))
	eventually(t, 10*time.Second, "the final result queued", func() bool {
		st, ok := s.e.statOf(t, c)
		return ok && st.backlog > bpHighWater+chunk
	})
	// The caller reads: progressive results, the ERROR ending the stream,
	// the other call's RESULT.
	progress, gotErr, gotBlob := 0, false, false
	for !gotErr || !gotBlob {
		m := p.next()
		switch {
		case m.Type == proto.CodeResult && m.Request == streamReq && !gotErr:
			progress++
		case m.Type == proto.CodeError && m.Request == streamReq:
			if string(m.URI) != proto.URIUnavailable {
				t.Fatalf("the stream ended with %s, want %s", m.URI, proto.URIUnavailable)
			}
			gotErr = true
		case m.Type == proto.CodeResult && m.Request == blobReq:
			gotBlob = true
		default:
			t.Fatalf("unexpected %v for request %d", m.Type, m.Request)
		}
	}
	t.Logf("the caller got %d progressive results, then ERROR %s", progress, proto.URIUnavailable)
	// The session is whole: its subscription and its calls work.
	if m := p.call("com.blob", nil); m.Type != proto.CodeResult {
		t.Fatalf("a call after the stream: %v %s", m.Type, m.URI)
	}
}
