package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

func TestCallResult(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	a := goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.add", []any{2, "x"}, map[string]any{"k": true}, nil)
	})
	m := c.expect(proto.CodeCall)
	eq(t, "request id", m.Request, uint64(1))
	eq(t, "procedure", string(m.URI), "com.example.add")
	args, kwargs := c.payload(m)
	eq(t, "args", args, []any{int64(2), "x"})
	eq(t, "kwargs", kwargs, map[string]any{"k": true})
	eq(t, "options", m.Opt.Len(), 0)

	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{int64(5)}), Kwargs: c.raw(map[string]any{"sum": 5})})
	r, err := a.wait(t)
	noErr(t, "Call", err)
	eq(t, "result args", r.Args, []any{int64(5)})
	eq(t, "result kwargs", r.Kwargs, map[string]any{"sum": int64(5)})
	eq(t, "progress", r.Progress, false)
}

func TestCallError(t *testing.T) {
	s, c := setup(t, "ws", proto.CBOR)
	a := goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.fail", nil, nil, nil)
	})
	m := c.expect(proto.CodeCall)
	if m.Args.Present() || m.Kwargs.Present() {
		t.Fatal("CALL without arguments carries an Arguments or ArgumentsKw element")
	}
	c.send(&proto.Message{
		Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte("com.example.oops"),
		Dict: c.raw(map[string]any{}), Args: c.raw([]any{"bad thing"}), Kwargs: c.raw(map[string]any{"code": 7}),
	})
	_, err := a.wait(t)
	e := wampErr(t, err, "com.example.oops")
	eq(t, "error args", e.Args, []any{"bad thing"})
	eq(t, "error kwargs", e.Kwargs, map[string]any{"code": int64(7)})
	eq(t, "error text", e.Error(), "wamp: com.example.oops: bad thing")
}

func TestCallProgressiveResults(t *testing.T) {
	s, c := setup(t, "ws", proto.MsgPack)
	var got []any
	opts := &CallOptions{OnProgress: func(r *Result) {
		if !r.Progress {
			t.Error("OnProgress got a result without Progress")
		}
		got = append(got, r.Args[0])
	}}
	a := goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.stream", nil, nil, opts)
	})
	m := c.expect(proto.CodeCall)
	eq(t, "receive_progress", m.Opt.Bool(proto.KeyReceiveProgress, false), true)
	for i := range 3 {
		r := &proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{i})}
		r.Opt.SetBool(proto.KeyProgress, true)
		c.send(r)
	}
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: c.raw([]any{"done"})})
	r, err := a.wait(t)
	noErr(t, "Call", err)
	eq(t, "final", r.Args, []any{"done"})
	eq(t, "progress results", got, []any{int64(0), int64(1), int64(2)})
}

func TestCallOptions(t *testing.T) {
	s, c := setup(t, "rs", proto.CBOR)
	opts := &CallOptions{Timeout: 1500 * time.Millisecond, DiscloseMe: true, ReceiveProgress: true}
	a := goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.slow", nil, nil, opts)
	})
	m := c.expect(proto.CodeCall)
	eq(t, "timeout", m.Opt.Uint(proto.KeyTimeout), uint64(1500))
	eq(t, "disclose_me", m.Opt.Bool(proto.KeyDiscloseMe, false), true)
	eq(t, "receive_progress", m.Opt.Bool(proto.KeyReceiveProgress, false), true)
	eq(t, "options", m.Opt.Len(), 3)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err := a.wait(t)
	noErr(t, "Call", err)

	// Extra raw options are merged, and override the typed ones.
	opts = &CallOptions{Timeout: time.Second, Options: map[string]any{"x_trace": "abc", "timeout": 42}}
	a = goDo(func() (*Result, error) {
		return s.Call(context.Background(), "com.example.slow", nil, nil, opts)
	})
	m = c.expect(proto.CodeCall)
	eq(t, "merged options", c.dict(m), map[string]any{"x_trace": "abc", "timeout": int64(42)})
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err = a.wait(t)
	noErr(t, "Call", err)
}

func TestCallCancel(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON)
	ctx, cancel := context.WithCancel(context.Background())
	a := goDo(func() (*Result, error) {
		return s.Call(ctx, "com.example.slow", nil, nil, &CallOptions{CancelMode: "kill"})
	})
	m := c.expect(proto.CodeCall)
	cancel()
	cm := c.expect(proto.CodeCancel)
	eq(t, "cancel request", cm.Request, m.Request)
	eq(t, "cancel mode", cm.Opt.CancelMode(proto.CancelSkip), proto.CancelKill)
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte(proto.URICanceled)})
	_, err := a.wait(t)
	wampErr(t, err, proto.URICanceled)
}

func TestCallCancelUnanswered(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.ReplyTimeout = 100 * time.Millisecond })
	// The context ends once the CALL is out: a 50 ms timeout, with the
	// calling goroutine started late on a loaded machine, ended before
	// Call began (no CALL sent).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := goDo(func() (*Result, error) {
		return s.Call(ctx, "com.example.slow", nil, nil, nil)
	})
	m := c.expect(proto.CodeCall)
	cancel()
	cm := c.expect(proto.CodeCancel)
	eq(t, "cancel request", cm.Request, m.Request)
	eq(t, "cancel has no mode", cm.Opt.Has(proto.KeyMode), false)
	_, err := a.wait(t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Call error = %v, want the context's", err)
	}
	// A late answer to the forgotten call is ignored.
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte(proto.URICanceled)})
	a = goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.next", nil, nil, nil) })
	m = c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err = a.wait(t)
	noErr(t, "Call after a forgotten call", err)
}

func TestRequestIDsIncrease(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	for want := uint64(1); want <= 3; want++ {
		noErr(t, "Publish", s.Publish(context.Background(), "com.example.t", nil, nil, nil))
		eq(t, "request id", c.expect(proto.CodePublish).Request, want)
	}
	a := goDo(func() (*Result, error) { return s.Call(context.Background(), "p", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	eq(t, "call request id", m.Request, uint64(4))
	c.send(&proto.Message{Type: proto.CodeResult, Request: 4})
	_, err := a.wait(t)
	noErr(t, "Call", err)
}

func TestCallProgressiveInvocations(t *testing.T) {
	s, c := setup(t, "wsb", proto.CBOR)
	pc, err := s.CallProgressive(context.Background(), "com.example.upload", &CallOptions{Timeout: time.Second, ReceiveProgress: true})
	noErr(t, "CallProgressive", err)
	_, err = pc.Result(context.Background())
	if !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Result before Send = %v, want ErrNotStarted", err)
	}

	pc, err = s.CallProgressive(context.Background(), "com.example.upload", &CallOptions{Timeout: time.Second, ReceiveProgress: true})
	noErr(t, "CallProgressive", err)
	for i := range 3 {
		noErr(t, "Send", pc.Send([]any{i}, nil, i == 2))
	}
	if err := pc.Send(nil, nil, true); !errors.Is(err, ErrFinalSent) {
		t.Fatalf("Send after final = %v, want ErrFinalSent", err)
	}
	for i := range 3 {
		m := c.expect(proto.CodeCall)
		eq(t, "request id", m.Request, pc.ID())
		eq(t, "procedure", string(m.URI), "com.example.upload")
		eq(t, "progress", m.Opt.Bool(proto.KeyProgress, false), i < 2)
		if i == 0 {
			eq(t, "first chunk timeout", m.Opt.Uint(proto.KeyTimeout), uint64(1000))
			eq(t, "first chunk receive_progress", m.Opt.Bool(proto.KeyReceiveProgress, false), true)
		} else {
			eq(t, "later chunks carry only progress", m.Opt.Has(proto.KeyTimeout) || m.Opt.Has(proto.KeyReceiveProgress), false)
		}
		args, _ := c.payload(m)
		eq(t, "chunk", args, []any{int64(i)})
	}
	c.send(&proto.Message{Type: proto.CodeResult, Request: pc.ID(), Args: c.raw([]any{"ok"})})
	r, err := pc.Result(context.Background())
	noErr(t, "Result", err)
	eq(t, "result", r.Args, []any{"ok"})
}

// register registers procedure and plays the router's REGISTERED.
func register(t *testing.T, s *Session, c *peerConn, procedure string, regID uint64, h Handler, opts *RegisterOptions) (*Registration, *proto.Message) {
	t.Helper()
	a := goDo(func() (*Registration, error) { return s.Register(context.Background(), procedure, h, opts) })
	m := c.expect(proto.CodeRegister)
	eq(t, "procedure", string(m.URI), procedure)
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: regID})
	r, err := a.wait(t)
	noErr(t, "Register", err)
	eq(t, "registration id", r.ID(), regID)
	eq(t, "active", r.Active(), true)
	return r, m
}

// invoke sends an INVOCATION with details.
func invoke(c *peerConn, req, reg uint64, args []any, details map[string]any) {
	m := &proto.Message{Type: proto.CodeInvocation, Request: req, ID: reg, Dict: c.raw(details)}
	if args != nil {
		m.Args = c.raw(args)
	}
	c.send(m)
}

func TestRegisterInvocationYield(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON)
	got := make(chan *Invocation, 1)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		got <- inv
		return &Result{Args: []any{inv.Args[0].(int64) * 2}, Kwargs: map[string]any{"by": inv.Procedure}}, nil
	}
	_, m := register(t, s, c, "com.example.", 555, h, &RegisterOptions{Match: "prefix", Invoke: "roundrobin", DiscloseCaller: true})
	eq(t, "match", m.Opt.Match(), proto.MatchPrefix)
	eq(t, "invoke", m.Opt.Invoke(), proto.InvokeRoundRobin)
	eq(t, "disclose_caller", m.Opt.Bool(proto.KeyDiscloseCaller, false), true)

	invoke(c, 31, 555, []any{21}, map[string]any{"procedure": "com.example.double", "caller": 99, "caller_authid": "bob"})
	y := c.expect(proto.CodeYield)
	eq(t, "yield request", y.Request, uint64(31))
	eq(t, "yield progress", y.Opt.Bool(proto.KeyProgress, false), false)
	args, kwargs := c.payload(y)
	eq(t, "yield args", args, []any{int64(42)})
	eq(t, "yield kwargs", kwargs, map[string]any{"by": "com.example.double"})
	inv := <-got
	eq(t, "caller", inv.Caller, uint64(99))
	eq(t, "caller authid", inv.CallerAuthID, "bob")
	eq(t, "registration", inv.Registration, uint64(555))
	eq(t, "details", inv.Details["caller_authid"], any("bob"))

	// An invocation for an unknown registration is refused.
	invoke(c, 32, 556, nil, map[string]any{})
	e := c.expect(proto.CodeError)
	eq(t, "refusal", string(e.URI), proto.URIUnavailable)
	eq(t, "refusal type", e.ReqType, proto.CodeInvocation)
}

func TestInvocationErrors(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		switch inv.Args[0] {
		case "wamp":
			return nil, &Error{URI: "com.example.invalid", Args: []any{"why"}, Kwargs: map[string]any{"n": 1}, Details: map[string]any{"x": "y"}}
		case "plain":
			return nil, errors.New("disk full")
		case "panic":
			panic("boom")
		case "unencodable":
			return &Result{Args: []any{make(chan int)}}, nil
		}
		return nil, nil
	}
	register(t, s, c, "com.example.fail", 7, h, nil)
	cases := []struct {
		arg    string
		uri    string
		args   []any
		kwargs map[string]any
	}{
		{arg: "wamp", uri: "com.example.invalid", args: []any{"why"}, kwargs: map[string]any{"n": int64(1)}},
		{arg: "plain", uri: URIRuntimeError, args: []any{"disk full"}},
		{arg: "panic", uri: URIRuntimeError, args: []any{"handler panic"}},
		{arg: "unencodable", uri: URIRuntimeError},
	}
	for i, tc := range cases {
		invoke(c, uint64(100+i), 7, []any{tc.arg}, map[string]any{})
		e := c.expect(proto.CodeError)
		eq(t, tc.arg+" request", e.Request, uint64(100+i))
		eq(t, tc.arg+" type", e.ReqType, proto.CodeInvocation)
		eq(t, tc.arg+" uri", string(e.URI), tc.uri)
		args, kwargs := c.payload(e)
		if tc.args != nil {
			eq(t, tc.arg+" args", args, tc.args)
		}
		eq(t, tc.arg+" kwargs", kwargs, tc.kwargs)
		if tc.arg == "wamp" {
			eq(t, "details", c.dict(e), map[string]any{"x": "y"})
		}
	}
	// A nil result is an empty YIELD.
	invoke(c, 200, 7, []any{"nil"}, map[string]any{})
	y := c.expect(proto.CodeYield)
	eq(t, "empty yield", y.Args.Present(), false)
}

// An answer over the router's RawSocket limit cannot be written (and the
// session goes on): the callee answers ERROR
// wamp.error.payload_size_exceeded without payload instead, for a result
// and for an error alike, so that the caller is not left waiting.
func TestOversizedAnswer(t *testing.T) {
	s, c := setupSmallRouter(t)
	big := strings.Repeat("a", 2000)
	register(t, s, c, "com.example.big", 9, func(_ context.Context, inv *Invocation) (*Result, error) {
		switch inv.Args[0] {
		case "result":
			return &Result{Args: []any{big}}, nil
		case "error":
			return nil, &Error{URI: "com.example.error", Args: []any{big}, Details: map[string]any{"big": big}}
		}
		return &Result{Args: []any{"small"}}, nil
	}, nil)
	for i, kind := range []string{"result", "error"} {
		invoke(c, uint64(80+i), 9, []any{kind}, map[string]any{})
		e := c.expect(proto.CodeError)
		eq(t, kind+" request", e.Request, uint64(80+i))
		eq(t, kind+" type", e.ReqType, proto.CodeInvocation)
		eq(t, kind+" uri", string(e.URI), proto.URIPayloadSizeExceeded)
		eq(t, kind+" payload", e.Args.Present() || e.Kwargs.Present(), false)
	}
	invoke(c, 82, 9, []any{"small"}, map[string]any{})
	y := c.expect(proto.CodeYield)
	args, _ := c.payload(y)
	eq(t, "small result", args, []any{"small"})
}

func TestInvocationProgress(t *testing.T) {
	s, c := setup(t, "wsb", proto.JSON)
	noProgress := make(chan error, 1)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		for i := range 2 {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				noProgress <- err
				return nil, err
			}
		}
		return &Result{Args: []any{"end"}}, nil
	}
	register(t, s, c, "com.example.stream", 8, h, nil)
	invoke(c, 40, 8, nil, map[string]any{"receive_progress": true})
	for i := range 2 {
		y := c.expect(proto.CodeYield)
		eq(t, "progress", y.Opt.Bool(proto.KeyProgress, false), true)
		args, _ := c.payload(y)
		eq(t, "progress args", args, []any{int64(i)})
	}
	y := c.expect(proto.CodeYield)
	eq(t, "final", y.Opt.Bool(proto.KeyProgress, false), false)

	// Without receive_progress, SendProgress refuses.
	invoke(c, 41, 8, nil, map[string]any{})
	c.expect(proto.CodeError)
	if err := <-noProgress; !errors.Is(err, ErrNoProgress) {
		t.Fatalf("SendProgress = %v, want ErrNoProgress", err)
	}
}

func TestInterrupt(t *testing.T) {
	s, c := setup(t, "ws", proto.MsgPack)
	causes := make(chan error, 2)
	started := make(chan struct{}, 2)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}
	register(t, s, c, "com.example.block", 9, h, nil)

	// kill: the callee answers with wamp.error.canceled.
	invoke(c, 50, 9, nil, map[string]any{})
	<-started
	in := &proto.Message{Type: proto.CodeInterrupt, Request: 50}
	in.Opt.SetString(proto.KeyMode, "kill")
	c.send(in)
	e := c.expect(proto.CodeError)
	eq(t, "error request", e.Request, uint64(50))
	eq(t, "error uri", string(e.URI), proto.URICanceled)
	eq(t, "cause", <-causes, ErrInterrupted)

	// killnowait: nothing is sent back.
	invoke(c, 51, 9, nil, map[string]any{})
	<-started
	in = &proto.Message{Type: proto.CodeInterrupt, Request: 51}
	in.Opt.SetString(proto.KeyMode, "killnowait")
	c.send(in)
	eq(t, "cause", <-causes, ErrInterrupted)
	noErr(t, "Publish", s.Publish(context.Background(), "after", nil, nil, nil))
	c.expect(proto.CodePublish) // not an ERROR for 51
}

func TestProgressiveInvocationChunks(t *testing.T) {
	s, c := setup(t, "rs", proto.CBOR)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		sum := inv.Args[0].(int64)
		for cur := inv; cur.Progress; {
			next, err := cur.Next(ctx)
			if err != nil {
				return nil, err
			}
			sum += next.Args[0].(int64)
			cur = next
		}
		if _, err := inv.Next(ctx); err != io.EOF {
			return nil, errors.New("Next after the final chunk did not return io.EOF")
		}
		return &Result{Args: []any{sum}}, nil
	}
	register(t, s, c, "com.example.sum", 10, h, nil)
	for i := 1; i <= 4; i++ {
		invoke(c, 60, 10, []any{i}, map[string]any{"progress": i < 4})
	}
	y := c.expect(proto.CodeYield)
	args, _ := c.payload(y)
	eq(t, "sum", args, []any{int64(10)})

	// A handler that answers early: late chunks are dropped, not taken for
	// new invocations.
	var calls atomic.Int32
	early := func(ctx context.Context, inv *Invocation) (*Result, error) {
		calls.Add(1)
		return &Result{Args: []any{"early"}}, nil
	}
	register(t, s, c, "com.example.early", 11, early, nil)
	invoke(c, 61, 11, []any{1}, map[string]any{"progress": true})
	c.expect(proto.CodeYield)
	invoke(c, 61, 11, []any{2}, map[string]any{"progress": true})
	invoke(c, 61, 11, []any{3}, map[string]any{})
	noErr(t, "Publish", s.Publish(context.Background(), "after", nil, nil, nil))
	c.expect(proto.CodePublish) // no second YIELD
	eq(t, "handler calls", calls.Load(), int32(1))
}

func TestUnregister(t *testing.T) {
	s, c := setup(t, "ws", proto.JSON)
	r, _ := register(t, s, c, "com.example.p", 12, func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	a := goDo(func() (struct{}, error) { return struct{}{}, s.Unregister(context.Background(), r) })
	m := c.expect(proto.CodeUnregister)
	eq(t, "registration", m.ID, uint64(12))
	c.send(&proto.Message{Type: proto.CodeUnregistered, Request: m.Request})
	_, err := a.wait(t)
	noErr(t, "Unregister", err)
	eq(t, "active", r.Active(), false)
	if err := s.Unregister(context.Background(), r); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("second Unregister = %v, want ErrNotRegistered", err)
	}
}

func TestRegisterRefused(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	a := goDo(func() (*Registration, error) {
		return s.Register(context.Background(), "p", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	})
	m := c.expect(proto.CodeRegister)
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeRegister, Request: m.Request, URI: []byte(proto.URIProcedureAlreadyExists)})
	_, err := a.wait(t)
	wampErr(t, err, proto.URIProcedureAlreadyExists)
}

func TestRegisterAbandoned(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	ctx, cancel := context.WithCancel(context.Background())
	a := goDo(func() (*Registration, error) {
		return s.Register(ctx, "com.example.late", func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	})
	m := c.expect(proto.CodeRegister)
	cancel()
	_, err := a.wait(t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Register = %v, want context.Canceled", err)
	}
	// The late REGISTERED is undone.
	c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 13})
	u := c.expect(proto.CodeUnregister)
	eq(t, "undone registration", u.ID, uint64(13))
}

func TestRegistrationRevoked(t *testing.T) {
	s, c := setup(t, "ws", proto.CBOR)
	r, _ := register(t, s, c, "com.example.p", 14, func(context.Context, *Invocation) (*Result, error) { return nil, nil }, nil)
	c.send(&proto.Message{Type: proto.CodeUnregistered, HasDict: true, Dict: c.raw(map[string]any{"registration": 14, "reason": "wamp.error.killed"})})
	deadline := time.Now().Add(wait)
	for r.Active() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	eq(t, "active after revocation", r.Active(), false)
	invoke(c, 70, 14, nil, map[string]any{})
	eq(t, "invocation after revocation", string(c.expect(proto.CodeError).URI), proto.URIUnavailable)
}

func TestHandlerContextOnClose(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	started := make(chan struct{})
	causes := make(chan error, 1)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, ctx.Err()
	}
	register(t, s, c, "com.example.block", 15, h, nil)
	invoke(c, 80, 15, nil, map[string]any{})
	<-started
	closeSession(t, s, c) // returns only once the handler has returned
	eq(t, "cause", <-causes, ErrClosed)
	if err := s.Publish(context.Background(), "x", nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Call(context.Background(), "x", nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close = %v, want ErrClosed", err)
	}
}

func TestCallEncodeError(t *testing.T) {
	s, _ := setup(t, "rs", proto.JSON)
	_, err := s.Call(context.Background(), "p", []any{make(chan int)}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Arguments") {
		t.Fatalf("Call with an unencodable argument = %v", err)
	}
	if s.Err() != nil {
		t.Fatalf("session ended on a local encoding error: %v", s.Err())
	}
}

// TestConcurrentCalls answers many concurrent calls in reverse order.
func TestConcurrentCalls(t *testing.T) {
	s, c := setup(t, "ws", proto.MsgPack)
	const n = 50
	results := make(chan error, n)
	for i := range n {
		go func() {
			r, err := s.Call(context.Background(), "com.example.echo", []any{i}, nil, nil)
			if err == nil && !reflect.DeepEqual(r.Args, []any{int64(i)}) {
				err = fmt.Errorf("call %d got %v", i, r.Args)
			}
			results <- err
		}()
	}
	calls := make([]*proto.Message, n)
	seen := map[uint64]bool{}
	for i := range n {
		calls[i] = c.expect(proto.CodeCall)
		if seen[calls[i].Request] {
			t.Fatalf("request id %d used twice", calls[i].Request)
		}
		seen[calls[i].Request] = true
	}
	for i := n - 1; i >= 0; i-- {
		c.send(&proto.Message{Type: proto.CodeResult, Request: calls[i].Request, Args: calls[i].Args})
	}
	for range n {
		select {
		case err := <-results:
			noErr(t, "Call", err)
		case <-time.After(wait):
			t.Fatal("calls did not finish")
		}
	}
}

// TestSlowHandlerDoesNotBlock checks that invocations run concurrently.
func TestSlowHandlerDoesNotBlock(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	release := make(chan struct{})
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		if inv.Args[0] == "slow" {
			<-release
		}
		return &Result{Args: inv.Args}, nil
	}
	register(t, s, c, "com.example.p", 16, h, nil)
	invoke(c, 90, 16, []any{"slow"}, map[string]any{})
	invoke(c, 91, 16, []any{"fast"}, map[string]any{})
	eq(t, "first answer", c.expect(proto.CodeYield).Request, uint64(91))
	close(release)
	eq(t, "second answer", c.expect(proto.CodeYield).Request, uint64(90))
}

// TestForwardedTimeout gives the handler's context the forwarded deadline.
func TestForwardedTimeout(t *testing.T) {
	s, c := setup(t, "ws", proto.CBOR)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	_, m := register(t, s, c, "com.example.p", 17, h, &RegisterOptions{ForwardTimeout: true})
	eq(t, "forward_timeout", m.Opt.Bool(proto.KeyForwardTimeout, false), true)
	invoke(c, 95, 17, nil, map[string]any{"timeout": 30})
	eq(t, "error", string(c.expect(proto.CodeError).URI), proto.URITimeout)
}

// emptyMaps is a MsgPack array of n empty dictionaries: n+5 bytes that
// take 64 bytes per element once decoded into Go values.
func emptyMaps(n int) proto.Raw {
	b := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for range n {
		b = append(b, 0x80)
	}
	return proto.Raw{B: b, Ser: proto.MsgPack}
}

// A 1 MiB CALL whose argument is 2^20 empty dictionaries would cost the
// callee 64 MiB decoded (found by review: 67-69 MiB of live heap while
// its handler ran): it is over the decode budget (16 times the message
// plus 64 KiB), so the callee refuses it with invalid_argument and its
// handler does not run. An ordinary payload of the same size goes
// through.
func TestDecodedPayloadAmplificationRefused(t *testing.T) {
	url := startRouter(t)
	callee := dialRouter(t, url)
	caller := dialRouter(t, url)
	ctx := context.Background()
	var runs atomic.Int32
	_, err := callee.Register(ctx, "com.example.sink", func(ctx context.Context, inv *Invocation) (*Result, error) {
		runs.Add(1)
		return &Result{Args: []any{len(inv.Args)}}, nil
	}, nil)
	noErr(t, "Register", err)
	refused := make(chan string, 1)
	const req = 1 << 40
	caller.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeError && m.Request == req {
			refused <- string(m.URI)
		}
	})
	m := &proto.Message{Type: proto.CodeCall, Request: req, URI: []byte("com.example.sink"), Args: emptyMaps(1 << 20)}
	noErr(t, "SendRaw", caller.SendRaw(m))
	select {
	case uri := <-refused:
		eq(t, "error", uri, proto.URIInvalidArgument)
	case <-time.After(4 * wait): // 2^20 elements decoded under -race: 5 s was short on a busy machine
		t.Fatal("no ERROR for the amplifying CALL")
	}
	eq(t, "handler runs", runs.Load(), int32(0))

	big := make([]any, 1<<16)
	for i := range big {
		big[i] = strings.Repeat("x", 14)
	}
	r, err := caller.Call(ctx, "com.example.sink", big, nil, nil)
	noErr(t, "Call with 1 MiB of strings", err)
	eq(t, "result", r.Args, []any{int64(len(big))})
}

// The decode budget on the other paths: a RESULT over it fails the call
// with ErrDecodeBudget, an EVENT over it is dropped (the next one is
// delivered), a later chunk of a progressive invocation over it ends the
// invocation with invalid_argument and cancels the handler waiting in
// Next; a negative Config.DecodeRatio lifts the bound.
func TestDecodeBudgetResultEventChunk(t *testing.T) {
	s, c := setup(t, "rs", proto.MsgPack)
	a := goDo(func() (*Result, error) { return s.Call(context.Background(), "com.example.f", nil, nil, nil) })
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: emptyMaps(1 << 16)})
	if _, err := a.wait(t); !errors.Is(err, ErrDecodeBudget) {
		t.Fatalf("Call with a RESULT over the decode budget: %v, want ErrDecodeBudget", err)
	}

	got := make(chan *Event, 2)
	subscribe(t, s, c, "com.example.t", 9, func(ev *Event) { got <- ev }, nil)
	big := event(c, 9, 1, nil, map[string]any{})
	big.Args = emptyMaps(1 << 16)
	c.send(big, event(c, 9, 2, []any{"small"}, map[string]any{}))
	select {
	case ev := <-got:
		eq(t, "delivered publication", ev.PublicationID, uint64(2))
	case <-time.After(wait):
		t.Fatal("no event")
	}

	waiting := make(chan struct{})
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		close(waiting)
		_, err := inv.Next(ctx)
		return nil, err
	}
	register(t, s, c, "com.example.up", 10, h, nil)
	invoke(c, 70, 10, []any{1}, map[string]any{"progress": true})
	<-waiting
	chunk := &proto.Message{Type: proto.CodeInvocation, Request: 70, ID: 10, Dict: c.raw(map[string]any{}), Args: emptyMaps(1 << 16)}
	c.send(chunk)
	e := c.expect(proto.CodeError)
	eq(t, "error request", e.Request, uint64(70))
	eq(t, "error", string(e.URI), proto.URIInvalidArgument)
	invoke(c, 70, 10, []any{3}, map[string]any{})
	noErr(t, "Publish", s.Publish(context.Background(), "after", nil, nil, nil))
	c.expect(proto.CodePublish) // no second answer, no new invocation

	s2, c2 := setup(t, "rs", proto.MsgPack, func(cfg *Config) { cfg.DecodeRatio = -1 })
	a = goDo(func() (*Result, error) { return s2.Call(context.Background(), "com.example.f", nil, nil, nil) })
	m = c2.expect(proto.CodeCall)
	c2.send(&proto.Message{Type: proto.CodeResult, Request: m.Request, Args: emptyMaps(1 << 16)})
	r, err := a.wait(t)
	noErr(t, "Call without a decode budget", err)
	eq(t, "elements", len(r.Args), 1<<16)
}

// A first ProgressiveCall.Send that fails without writing anything (a
// chunk over the router's limit, or a payload that does not encode)
// changes nothing: a retry of the first chunk as the final one goes out
// without progress=true (found by review: the failed Send had set it in
// the options kept for the first CALL, so the router waited for chunks
// that never came and the call hung).
func TestProgressiveCallRetryAfterFailedFirstSend(t *testing.T) {
	s, c := setupSmallRouter(t) // the router takes 1 KiB
	pc, err := s.CallProgressive(context.Background(), "com.example.upload", &CallOptions{Timeout: time.Second})
	noErr(t, "CallProgressive", err)
	if err := pc.Send([]any{strings.Repeat("a", 2000)}, nil, false); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized first chunk: %v, want ErrMessageTooLarge", err)
	}
	noErr(t, "Send (the whole call, small enough)", pc.Send([]any{"small"}, nil, true))
	m := c.expect(proto.CodeCall)
	if m.Opt.Bool(proto.KeyProgress, false) {
		t.Fatalf("the final (and only) CALL carries progress=true: the router waits for more chunks")
	}
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err = pc.Result(context.Background())
	noErr(t, "Result", err)
}

// The same with a first chunk whose payload cannot be encoded.
func TestProgressiveCallRetryAfterEncodeError(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	pc, err := s.CallProgressive(context.Background(), "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	if err := pc.Send([]any{make(chan int)}, nil, false); err == nil {
		t.Fatal("a chan was encoded")
	}
	noErr(t, "Send", pc.Send([]any{1}, nil, true))
	m := c.expect(proto.CodeCall)
	if m.Opt.Bool(proto.KeyProgress, false) {
		t.Fatalf("the final (and only) CALL carries progress=true")
	}
	c.send(&proto.Message{Type: proto.CodeResult, Request: m.Request})
	_, err = pc.Result(context.Background())
	noErr(t, "Result", err)
}

// A progressive call the router already answered (the callee refused the
// first chunk): Send fails with ErrCallDone, wrapping the call's error, and
// writes nothing (found by review: it went on writing CALL chunks under
// the ended call's request id; a router that has forgotten the id
// (edgewamp remembers a few ended progressive calls) takes the chunk for
// a new call, and the callee runs on a fragment nobody waits for).
func TestProgressiveCallSendAfterAnswer(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	got := make(chan struct{}, 1)
	s.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeError {
			got <- struct{}{}
		}
	})
	pc, err := s.CallProgressive(context.Background(), "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	noErr(t, "Send 1", pc.Send([]any{1}, nil, false))
	m := c.expect(proto.CodeCall)
	c.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte(proto.URIInvalidArgument)})
	<-got
	time.Sleep(20 * time.Millisecond) // the reader has finished the call
	err = pc.Send([]any{2}, nil, false)
	noErr(t, "Publish (marker)", s.Publish(context.Background(), "marker", nil, nil, nil))
	next := c.recv()
	if next.Type == proto.CodeCall {
		t.Fatalf("Send after the call's ERROR wrote CALL request %d (Send returned %v); want an error and nothing written", next.Request, err)
	}
	if !errors.Is(err, ErrCallDone) {
		t.Fatalf("Send after the call's ERROR: %v, want ErrCallDone", err)
	}
	wampErr(t, err, proto.URIInvalidArgument)
	_, err = pc.Result(context.Background())
	wampErr(t, err, proto.URIInvalidArgument)

	// A call Result gave up on, and one whose session ended.
	pc, err = s.CallProgressive(context.Background(), "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	if _, err := pc.Result(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Result before any chunk: %v, want ErrNotStarted", err)
	}
	if err := pc.Send([]any{1}, nil, true); !errors.Is(err, ErrCallDone) {
		t.Fatalf("Send after Result released the call: %v, want ErrCallDone", err)
	}
	pc, err = s.CallProgressive(context.Background(), "com.example.upload", nil)
	noErr(t, "CallProgressive", err)
	closeSession(t, s, c)
	if err := pc.Send([]any{1}, nil, true); !errors.Is(err, ErrCallDone) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after the session ended: %v, want ErrCallDone and ErrClosed", err)
	}
}

// A late chunk of a progressive invocation answered early is dropped even
// after many other early answers (found by review: the session remembered
// the last 64, so after a 65th the late final chunk of the first was taken
// for a new invocation and ran the handler again).
func TestProgressiveInvocationLateChunkAfterManyEarlyAnswers(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	var calls atomic.Int32
	early := func(ctx context.Context, inv *Invocation) (*Result, error) {
		calls.Add(1)
		return &Result{Args: []any{"early"}}, nil
	}
	register(t, s, c, "com.example.early", 11, early, nil)
	const n = 100
	for i := range n {
		invoke(c, uint64(100+i), 11, []any{1}, map[string]any{"progress": true})
		c.expect(proto.CodeYield)
	}
	invoke(c, 100, 11, []any{2}, map[string]any{}) // the first one's late final chunk
	invoke(c, 101, 11, []any{2}, map[string]any{"progress": true})
	time.Sleep(50 * time.Millisecond) // a handler started by them would have answered
	noErr(t, "Publish", s.Publish(context.Background(), "after", nil, nil, nil))
	if m := c.recv(); m.Type != proto.CodePublish {
		t.Fatalf("a late chunk ran the handler again: %s %d", m.Type, m.Request)
	}
	eq(t, "handler calls", calls.Load(), int32(n))
}

// A REGISTERED reusing the registration id of a procedure the session
// holds (a hostile or broken router) is a protocol violation: Register
// fails, the router gets ABORT, and the INVOCATION right behind it does
// not run the new procedure's handler in the place of the old one's
// (found by review: the new Registration replaced the old under the id,
// which was orphaned: active, never invoked, refused by Unregister). The
// same for an abandoned REGISTER: its undoing UNREGISTER would take down
// the registration holding the id.
func TestRegisteredReusingHeldID(t *testing.T) {
	for _, abandoned := range []bool{false, true} {
		t.Run(fmt.Sprint("abandoned=", abandoned), func(t *testing.T) {
			s, c := setup(t, "rs", proto.JSON)
			var ran atomic.Value
			h := func(name string) Handler {
				return func(context.Context, *Invocation) (*Result, error) { ran.Store(name); return nil, nil }
			}
			regA, _ := register(t, s, c, "com.a", 10, h("com.a"), nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := goDo(func() (*Registration, error) { return s.Register(ctx, "com.b", h("com.b"), nil) })
			m := c.expect(proto.CodeRegister)
			if abandoned {
				cancel()
				a.wait(t)
			}
			c.send(&proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: 10})
			invoke(c, 5, 10, []any{1}, map[string]any{})
			ab := c.expect(proto.CodeAbort)
			eq(t, "abort reason", string(ab.URI), proto.URIProtocolViolation)
			if !abandoned {
				if _, err := a.wait(t); err == nil || !strings.Contains(err.Error(), "protocol violation") {
					t.Fatalf("Register of com.b answered with com.a's registration id: %v, want a protocol violation", err)
				}
			}
			<-s.Done()
			if err := s.Err(); err == nil || !strings.Contains(err.Error(), `which "com.a" holds`) {
				t.Fatalf("Err = %v", err)
			}
			if got := ran.Load(); got != nil {
				t.Fatalf("the invocation of registration 10 ran %v's handler", got)
			}
			eq(t, "com.a active", regA.Active(), false)
		})
	}
}
