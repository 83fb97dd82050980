package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Call whose OnProgress panics (the panic goes up the caller's
// goroutine, which an HTTP server, say, recovers) gives the call up: it
// sends CANCEL and forgets the call, so that the progressive results the
// router goes on sending are dropped, not queued for nobody until the
// session ends.
func TestCallOnProgressPanicGivesUpTheCall(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	opts := &CallOptions{OnProgress: func(r *Result) { panic("bad progress") }}
	a := goDo(func() (p any, err error) {
		defer func() { p = recover() }()
		s.Call(context.Background(), "com.example.stream", nil, nil, opts)
		return nil, nil
	})
	m := c.expect(proto.CodeCall)
	progress := func(i int) {
		r := &proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{i})}
		r.Opt.SetBool(proto.KeyProgress, true)
		c.send(r)
	}
	progress(0)
	p, _ := a.wait(t)
	eq(t, "recovered", fmt.Sprint(p), "bad progress")
	for i := 1; i <= 200; i++ {
		progress(i)
	}
	// The next message from the client must be the CANCEL.
	done := goDo(func() (struct{}, error) {
		return struct{}{}, s.Publish(context.Background(), "marker", nil, nil, nil)
	})
	next := c.recv()
	done.wait(t)
	if next.Type != proto.CodeCancel || next.Request != m.Request {
		t.Errorf("after OnProgress panicked the client sent %s (request %d), want CANCEL of call %d", next.Type, next.Request, m.Request)
	}
	time.Sleep(50 * time.Millisecond) // the reader has read the results
	s.mu.Lock()
	queued := 0
	for _, cl := range s.calls {
		queued += len(cl.queue)
	}
	calls := len(s.calls)
	s.mu.Unlock()
	if calls != 0 || queued != 0 {
		t.Errorf("after OnProgress panicked, %d calls pending with %d progressive results queued for nobody", calls, queued)
	}
}
