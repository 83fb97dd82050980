package client

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Found by the review of the change (fixed): the FIRST chunk of a progressive invocation over
// the decode budget is answered with ERROR invalid_argument, but the
// invocation is not remembered as answered early (finishedRing), so the
// later chunks the router sent before it had the ERROR are taken for a
// new invocation: the handler runs on a fragment of the call (exactly
// what the finished ring exists to prevent).
func TestDecodeBudgetFirstChunkLateChunksDropped(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	var calls atomic.Int32
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		calls.Add(1)
		return &Result{Args: []any{"ran on a fragment"}}, nil
	}
	register(t, s, c, "com.example.up", 12, h, nil)
	first := &proto.Message{Type: proto.CodeInvocation, Request: 90, ID: 12,
		Dict: c.raw(map[string]any{"progress": true}), Args: emptyMaps(1 << 16)}
	c.send(first)
	e := c.expect(proto.CodeError)
	eq(t, "error request", e.Request, uint64(90))
	eq(t, "error", string(e.URI), proto.URIInvalidArgument)
	// The chunks the router had sent before it had the ERROR.
	invoke(c, 90, 12, []any{2}, map[string]any{"progress": true})
	invoke(c, 90, 12, []any{3}, map[string]any{})
	time.Sleep(100 * time.Millisecond) // a handler started by them would have answered
	noErr(t, "Publish (marker)", s.Publish(context.Background(), "marker", nil, nil, nil))
	if m := c.recv(); m.Type != proto.CodePublish {
		t.Errorf("after the refused first chunk, the late chunks were taken for a new invocation: got %s req %d, want only the marker PUBLISH", m.Type, m.Request)
	}
	eq(t, "handler runs", calls.Load(), int32(0))
}

// Found by the review of the change (fixed): a progressive RESULT over the decode budget
// fails the call locally (ErrDecodeBudget) and forgets it, but tells the
// router nothing: the router's call, and the callee streaming it, go on
// for ever (every later RESULT is dropped as one of an unknown call). The
// ctx path of the same call sends CANCEL; this error path should too.
func TestDecodeBudgetProgressiveResultCancels(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	a := goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.stream", nil, nil, &CallOptions{ReceiveProgress: true})
	})
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request,
		Dict: c.raw(map[string]any{"progress": true}), Args: emptyMaps(1 << 16)})
	if _, err := a.wait(t); !errors.Is(err, ErrDecodeBudget) {
		t.Fatalf("Call with a progressive RESULT over the decode budget: %v, want ErrDecodeBudget", err)
	}
	time.Sleep(50 * time.Millisecond)
	noErr(t, "Publish (marker)", s.Publish(context.Background(), "marker", nil, nil, nil))
	next := c.recv()
	if next.Type != proto.CodeCancel {
		t.Errorf("after failing call %d on a progressive RESULT over the budget the client sent %s, want CANCEL (the router's call and its callee go on)", m.Request, next.Type)
	}
}

// Found by the review of the change (fixed): Close looks for ANY Client's callback frame in
// its goroutine's stack, not its own Client's. So a Close of Client B
// called from Client A's OnSession (or OnDisconnect) returns at once,
// without waiting for B's goroutine, against Close's documentation
// ("a Close from any other goroutine waits"): B's session is still up
// when Close returns.
func TestCloseOfOtherClientFromCallbackWaits(t *testing.T) {
	pB := newPeer(t)
	clB, cB := connectPeer(t, pB, clientCfg(pB), ReconnectConfig{})
	go func() {
		time.Sleep(300 * time.Millisecond) // the router is slow to answer B's GOODBYE
		cB.answerGoodbye()
	}()

	pA := newPeer(t)
	var bDone atomic.Bool
	returned := make(chan struct{})
	rc := ReconnectConfig{OnSession: func(*Session) {
		clB.Close()
		select {
		case <-clB.done:
			bDone.Store(true)
		default:
		}
		close(returned)
	}}
	a := goDo(func() (*Client, error) { return Connect(context.Background(), clientCfg(pA), rc) })
	cA := pA.accept()
	cA.welcome(5)
	clA, err := a.wait(t)
	noErr(t, "Connect A", err)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("B.Close from A's OnSession did not return")
	}
	if !bDone.Load() {
		t.Errorf("B.Close called from Client A's OnSession returned before B's goroutine ended (it took A's callback frame for B's own)")
	}
	go cA.answerGoodbye()
	clA.Close()
}
