package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// ProgressiveCall.Result called again (a deferred Result as the cleanup
// its documentation asks for, after the one that took the result), or
// by two goroutines at once, returns the call's result to each: before,
// the one that came second waited for a wake-up that had been taken,
// until its context ended (for ever with context.Background), then sent
// CANCEL for the finished call and waited ReplyTimeout for its answer.
func TestProgressiveCallResultTwice(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.ReplyTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	pc, err := s.CallProgressive(ctx, "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send", pc.Send([]any{1}, nil, true))
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{"ok"})})
	r, err := pc.Result(ctx)
	noErr(t, "Result", err)
	eq(t, "result", r.Args, []any{"ok"})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err = pc.Result(short)
	if err != nil || r == nil {
		t.Errorf("Result again: %v, %v after %v, want the result", r, err, time.Since(start).Round(time.Millisecond))
	} else {
		eq(t, "result again", r.Args, []any{"ok"})
	}

	// Two goroutines wait for one call's result.
	pc, err = s.CallProgressive(ctx, "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send", pc.Send([]any{2}, nil, true))
	m = c.expect(proto.CodeCall)
	both, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	a1 := goDo(func() (*Result, error) { return pc.Result(both) })
	a2 := goDo(func() (*Result, error) { return pc.Result(both) })
	time.Sleep(50 * time.Millisecond) // both wait
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{"two"})})
	for i, a := range []async[*Result]{a1, a2} {
		r, err := a.wait(t)
		if err != nil || r == nil {
			t.Errorf("concurrent Result %d: %v, %v, want the result", i, r, err)
		}
	}
	// No CANCEL went out for the finished calls.
	noErr(t, "Publish (marker)", s.Publish(ctx, "marker", nil, nil, nil))
	if next := c.recv(); next.Type != proto.CodePublish {
		t.Errorf("the client sent %s (request %d) for a finished call", next.Type, next.Request)
	}

	// A call an earlier Result gave up on (the router did not answer its
	// CANCEL): Result again says so at once.
	pc, err = s.CallProgressive(ctx, "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send", pc.Send([]any{3}, nil, true))
	c.expect(proto.CodeCall)
	gone, cancel3 := context.WithCancel(ctx)
	cancel3()
	if _, err := pc.Result(gone); err != context.Canceled {
		t.Fatalf("Result with a canceled context: %v", err)
	}
	c.expect(proto.CodeCancel)
	again := goDo(func() (*Result, error) { return pc.Result(ctx) })
	if again.pending(200 * time.Millisecond) {
		t.Error("Result after one that gave up on the call waits (for ever: nothing will answer it)")
		c.conn.Close() // ends the session: the waiting Result returns
		again.wait(t)
		return
	}
	if _, err := again.wait(t); !errors.Is(err, ErrCallDone) {
		t.Errorf("Result after one that gave up on the call: %v, want ErrCallDone", err)
	}
}

// Goroutines waiting for one progressive call's result with contexts
// that end together cancel the call once (one CANCEL), and do not race
// on whether it was (go test -race). 30 rounds of 8 waiters.
func TestProgressiveCallResultCanceledTwice(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.ReplyTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	for round := range 30 {
		pc, err := s.CallProgressive(ctx, "com.example.upload", nil)
		noErr(t, "CallProgressive", err)
		noErr(t, "Send", pc.Send([]any{round}, nil, true))
		m := c.expect(proto.CodeCall)
		all, cancel := context.WithCancel(ctx)
		var as []async[*Result]
		for range 8 {
			as = append(as, goDo(func() (*Result, error) { return pc.Result(all) }))
		}
		time.Sleep(20 * time.Millisecond) // all wait
		cancel()
		c.expect(proto.CodeCancel)
		c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte(proto.URICanceled)})
		for i, a := range as {
			_, err := a.wait(t)
			if e, ok := errors.AsType[*Error](err); !ok || e.URI != proto.URICanceled {
				t.Errorf("round %d: Result %d: %v, want %s", round, i, err, proto.URICanceled)
			}
		}
		// The next message must be the marker, not a second CANCEL.
		noErr(t, "Publish (marker)", s.Publish(ctx, "marker", nil, nil, nil))
		if next := c.recv(); next.Type != proto.CodePublish {
			t.Fatalf("round %d: the client sent %s (request %d) again for one call", round, next.Type, next.Request)
		}
	}
}
