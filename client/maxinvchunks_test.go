package client

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config.MaxInvocationBytes counted a progressive invocation's first
// chunk only: the later chunks held for its Handler's Invocation.Next
// counted towards MaxBacklog alone, so a caller streaming to a handler
// that has not read them yet (a tiny first chunk, then 1.2 MiB) left a
// callee bounded to 1 MiB of invocations taking one more, 1.6 MiB held.
// The chunks held for Next count too: the INVOCATION past the bound is
// refused wamp.error.unavailable (the caller, with no other callee, gets
// no_available_callee).
func TestMaxInvocationBytesCountsHeldChunks(t *testing.T) {
	const limit, chunk, chunks = 1 << 20, 400 << 10, 3
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	callee, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxInvocationBytes: limit})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	release := make(chan struct{})
	started := make(chan bool, 4)
	_, err = callee.Register(ctx, "com.example.up", func(ctx context.Context, inv *Invocation) (*Result, error) {
		started <- inv.Progress
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &Result{}, nil
	}, nil)
	noErr(t, "Register", err)
	caller := dialRouter(t, url)

	pc, err := caller.CallProgressive(ctx, "com.example.up", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send first", pc.Send([]any{"start"}, nil, false))
	if !<-started {
		t.Fatal("the stream's handler started without progress")
	}
	payload := make([]byte, chunk)
	for range chunks {
		noErr(t, "Send chunk", pc.Send([]any{payload}, nil, false))
	}
	// The callee holds the chunks for Next.
	for deadline := time.Now().Add(wait); ; {
		callee.mu.Lock()
		held := callee.streamHeld
		callee.mu.Unlock()
		if held >= chunks*chunk {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the callee holds %d bytes of chunks, want %d", held, chunks*chunk)
		}
		time.Sleep(time.Millisecond)
	}
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second) // started, it would wait for release
	_, err = caller.Call(cctx, "com.example.up", []any{payload}, nil, nil)
	ccancel()
	select {
	case <-started:
		t.Fatalf("a %d-byte invocation started beside a stream holding %d bytes (MaxInvocationBytes %d); the call: %v", chunk, chunks*chunk, limit, err)
	default:
	}
	wampErr(t, err, proto.URINoAvailableCallee)
	close(release)
	_, err = pc.Result(ctx)
	noErr(t, "the stream's Result", err)
	// A Handler that reads its chunks.
	_, err = callee.Register(ctx, "com.example.read", func(ctx context.Context, inv *Invocation) (*Result, error) {
		n := 0
		for c := inv; ; n++ {
			var err error
			if c, err = c.Next(ctx); err != nil {
				return &Result{Args: []any{n}}, nil
			}
		}
	}, nil)
	noErr(t, "Register read", err)
	pc, err = caller.CallProgressive(ctx, "com.example.read", nil)
	noErr(t, "CallProgressive read", err)
	for i := range chunks {
		noErr(t, "Send", pc.Send([]any{payload}, nil, i == chunks-1))
	}
	res, err := pc.Result(ctx)
	noErr(t, "the reading stream's Result", err)
	eq(t, "chunks read", res.Args, []any{int64(chunks - 1)})
	// What was counted is given back: the chunks dropped at the answer
	// and those taken by Next included.
	for deadline := time.Now().Add(wait); ; {
		callee.mu.Lock()
		held, running := callee.handlerBytes, callee.handlers
		callee.mu.Unlock()
		if held == 0 && running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still counted for %d running handlers", held, running)
		}
		time.Sleep(time.Millisecond)
	}
}
