package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// CallOptions are the options of a call. The zero value (or nil) is a plain
// call.
type CallOptions struct {
	// Timeout, when positive, is sent as CALL.Options.timeout in
	// milliseconds: the router cancels the call when it expires. The client
	// does not enforce it itself; use the context for a local bound.
	Timeout time.Duration
	// ReceiveProgress asks for progressive results
	// (CALL.Options.receive_progress). It is implied by OnProgress.
	ReceiveProgress bool
	// OnProgress receives each progressive result, in order, on the
	// goroutine that called Call (or ProgressiveCall.Result), before the
	// final result is returned. Without it progressive results are
	// dropped. Results that come faster than it takes them are held,
	// within Config.MaxBacklog: past it the call is canceled (CANCEL
	// sent) and fails with ErrBacklog. A panic in it goes up that goroutine, the call canceled
	// (CANCEL sent, later results dropped).
	OnProgress func(*Result)
	// DiscloseMe asks the router to disclose the caller's identity to the
	// callee (CALL.Options.disclose_me).
	DiscloseMe bool
	// CancelMode is CANCEL.Options.mode ("skip", "kill" or "killnowait")
	// when the context is canceled; empty leaves the mode to the router.
	CancelMode string
	// Options are extra raw CALL.Options keys. They override the keys
	// above of the same name.
	Options map[string]any
}

// Result is a call's result: a RESULT's payload and details, also used for
// progressive results and for a Handler's reply.
type Result struct {
	Args    []any
	Kwargs  map[string]any
	Details map[string]any
	// Progress is true for a progressive result
	// (RESULT.Details.progress). It is ignored in a Handler's return value,
	// which is always the final YIELD (see Invocation.SendProgress).
	Progress bool

	size int // what a progressive result holds (onResult), while held for OnProgress
}

// call is a pending CALL. Its result fields are guarded by Session.mu; the
// reader fills them and signals wake.
type call struct {
	id         uint64        // Static.
	onProgress func(*Result) // Static.
	mode       string        // Static: the cancel mode.
	wake       chan struct{} // Static; capacity 1.
	// fin, static, is closed once done is set, after it: every goroutine
	// waiting for the call (ProgressiveCall.Result may be called again,
	// or by two at once) sees it, where wake's one signal wakes one.
	fin   chan struct{}
	queue []*Result // Guarded by Session.mu: undelivered progressive results.
	// queued, guarded by Session.mu, is the bytes (as received) of the
	// progressive results queued or being given to OnProgress
	// (Config.MaxBacklog).
	queued int
	final  *Result // Guarded by Session.mu.
	err    error   // Guarded by Session.mu.
	done   bool    // Guarded by Session.mu.
	// canceled is set by the waiter that sends CANCEL: the one, of
	// ProgressiveCall.Result's waiters (several may wait at once), that
	// sets it first.
	canceled atomic.Bool
}

func (c *call) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// finished wakes every waiter of c once c.done is set (once: by the one
// that took c out of the pending calls).
func (c *call) finished() {
	close(c.fin)
	c.signal()
}

// callOptions builds the CALL options of opts.
func (s *Session) callOptions(opts *CallOptions) *options {
	if opts == nil {
		return newOptions(s.ser, nil)
	}
	o := newOptions(s.ser, opts.Options)
	if opts.ReceiveProgress || opts.OnProgress != nil {
		o.setBool(proto.KeyReceiveProgress, true)
	}
	if opts.Timeout > 0 {
		o.setUint(proto.KeyTimeout, uint64(max(opts.Timeout.Milliseconds(), 1)))
	}
	if opts.DiscloseMe {
		o.setBool(proto.KeyDiscloseMe, true)
	}
	return o
}

// newCall registers a pending call with a new request id.
func (s *Session) newCall(opts *CallOptions) (*call, error) {
	c := &call{wake: make(chan struct{}, 1), fin: make(chan struct{})}
	if opts != nil {
		c.onProgress, c.mode = opts.OnProgress, opts.CancelMode
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.lost
	}
	c.id = s.newRequestID()
	s.calls[c.id] = c
	return c, nil
}

// forget drops a pending call: late replies to it are ignored.
func (s *Session) forget(id uint64) {
	s.mu.Lock()
	if c := s.calls[id]; c != nil {
		s.dropQueue(c) // nobody waits for them any more
		delete(s.calls, id)
	}
	s.mu.Unlock()
}

// dropQueue drops the progressive results c holds for OnProgress, their
// bytes given back to the session's bound (Config.MaxBacklog); those
// being given to OnProgress are given back by their waiter. Called with
// mu held.
func (s *Session) dropQueue(c *call) {
	n := 0
	for _, r := range c.queue {
		n += r.size
	}
	c.queued -= n
	s.streamHeld -= n
	c.queue = nil
}

// overBacklog reports whether a message holding n bytes for a stream
// (an invocation's chunk, a call's progressive result) would take what
// the session's streams hold past Config.MaxBacklog: one is always taken
// when none is held. Called with mu held.
func (s *Session) overBacklog(n int) bool {
	lim := s.cfg.MaxBacklog
	return lim > 0 && s.streamHeld > 0 && s.streamHeld+n > lim
}

// Call calls procedure and waits for its final result. A WAMP error reply
// is returned as an *Error. When ctx is done before the result arrives,
// Call sends CANCEL (with opts.CancelMode) and waits up to
// Config.ReplyTimeout (the CANCEL's wait for its turn to write included)
// for the router's answer: it then returns the router's
// ERROR (an *Error, normally wamp.error.canceled), or the result if the
// call completed meanwhile, or ctx.Err() when the router does not answer in
// time. If the session ends, Call returns an error wrapping
// ErrSessionLost and the session's error (ErrClosed after Close). ctx also
// bounds the wait for another goroutine's write (Config.WriteTimeout):
// when it ends first, the CALL is not sent and ctx.Err() is returned.
func (s *Session) Call(ctx context.Context, procedure string, args []any, kwargs map[string]any, opts *CallOptions) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &proto.Message{Type: proto.CodeCall, URI: []byte(procedure)}
	if err := s.callOptions(opts).apply(m); err != nil {
		return nil, err
	}
	var err error
	if m.Args, m.Kwargs, err = encodePayload(s.ser, args, kwargs); err != nil {
		return nil, err
	}
	c, err := s.newCall(opts)
	if err != nil {
		return nil, err
	}
	m.Request = c.id
	if err := s.sendCtx(ctx, m); err != nil {
		s.forget(c.id)
		return nil, err
	}
	return s.await(ctx, c)
}

// await waits for c's final reply, delivering progressive results on the
// way, and cancels the call when ctx is done (unless it is done already:
// a ProgressiveCall.Result called again). When OnProgress panics, the
// call is given up as the panic goes up the caller's goroutine (which
// may recover it and go on): CANCEL is sent and the call ends with
// errProgressPanic for any other waiter, so that the progressive results
// the router goes on sending are dropped, not queued for nobody.
func (s *Session) await(ctx context.Context, c *call) (r *Result, err error) {
	release := s.holdRoom()
	defer release()
	returned := false
	defer func() {
		if !returned {
			s.mu.Lock()
			done := c.done
			s.mu.Unlock()
			if !done {
				rctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReplyTimeout)
				s.sendCancel(rctx, c)
				cancel()
			}
			s.finishCall(c.id, nil, errProgressPanic)
			// What came for it since is dropped: no waiter gives it
			// to OnProgress any more (finishCall took it out of calls,
			// so no more comes).
			s.mu.Lock()
			s.dropQueue(c)
			s.mu.Unlock()
		}
	}()
	r, err = s.awaitLoop(ctx, c)
	returned = true
	return r, err
}

// errProgressPanic ends a call whose OnProgress panicked.
var errProgressPanic = errors.New("client: the call's OnProgress panicked; the call was canceled")

func (s *Session) awaitLoop(ctx context.Context, c *call) (*Result, error) {
	ctxDone := ctx.Done()
	var timeout <-chan struct{}
	for {
		select {
		case <-c.wake:
		case <-c.fin:
		case <-ctxDone:
			ctxDone = nil
			s.mu.Lock()
			done := c.done
			s.mu.Unlock()
			if !done {
				// ReplyTimeout bounds the CANCEL's wait for its turn to
				// write (behind a write stuck on a router that does not
				// read, it is not sent) and the wait for the answer.
				rctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReplyTimeout)
				defer cancel()
				s.sendCancel(rctx, c)
				timeout = rctx.Done()
			}
		case <-timeout:
			s.forget(c.id)
			return nil, ctx.Err()
		}
		s.mu.Lock()
		q := c.queue
		c.queue = nil
		done, res, err := c.done, c.final, c.err
		s.mu.Unlock()
		s.deliverProgress(c, q)
		if done {
			return res, err
		}
	}
}

// deliverProgress gives the progressive results q, taken from c's
// queue, to c's OnProgress, then gives their bytes back to the session's
// bound (Config.MaxBacklog): also when OnProgress panics (await), since
// the bound is the session's and a caller may recover the panic and go
// on. Before, what the panicking call held stayed counted for ever, and
// every later stream of the session past the rest of the bound ended
// with ErrBacklog.
func (s *Session) deliverProgress(c *call, q []*Result) {
	held := 0
	for _, r := range q {
		held += r.size
		r.size = 0
	}
	if held > 0 {
		defer func() {
			s.mu.Lock()
			c.queued -= held
			s.streamHeld -= held
			s.mu.Unlock()
		}()
	}
	for i, r := range q {
		q[i] = nil
		if c.onProgress != nil {
			c.onProgress(r)
		}
	}
}

// sendCancel sends CANCEL for c, waiting for the write lock within ctx.
//
// [CANCEL, CALL.Request|id, Options|dict]
func (s *Session) sendCancel(ctx context.Context, c *call) {
	if !c.canceled.CompareAndSwap(false, true) {
		return
	}
	m := &proto.Message{Type: proto.CodeCancel, Request: c.id}
	if c.mode != "" {
		m.Opt.SetString(proto.KeyMode, c.mode)
	}
	s.sendCtx(ctx, m)
}

// onResult delivers a RESULT: progressive ones are queued for the waiting
// goroutine (so that the reader never waits on a caller), within
// Config.MaxBacklog: past it the call is canceled; the final one
// completes the call.
//
// [RESULT, CALL.Request|id, Details|dict, Arguments|list, ArgumentsKw|dict]
func (s *Session) onResult(m *proto.Message) {
	// A RESULT for no call (one forgotten after its CANCEL's wait, or a
	// hostile router's) is dropped before its payload is decoded: it
	// cost up to DecodeRatio times its size in Go values thrown away.
	// A call forgotten while this one decodes is found gone below.
	s.mu.Lock()
	_, ok := s.calls[m.Request]
	s.mu.Unlock()
	if !ok {
		return
	}
	budget := measuredBudget(s.decodeBudget(s.inLen))
	start := *budget
	args, kwargs, err := s.payloadOf(m, budget)
	if err != nil {
		// A progressive result that does not decode (or is over the
		// decode budget) fails the call too, canceled (cancelCall).
		err = fmt.Errorf("client: RESULT of a %d-byte message: %w", s.inLen, err)
		if m.Opt.Bool(proto.KeyProgress, false) {
			s.cancelCall(m.Request, err)
			return
		}
		s.finishCall(m.Request, nil, err)
		return
	}
	details, dcost := s.dictOfCost(m.Dict)
	r := &Result{Args: args, Kwargs: kwargs, Details: details, Progress: m.Opt.Bool(proto.KeyProgress, false)}
	if !r.Progress {
		s.finishCall(m.Request, r, nil)
		return
	}
	s.mu.Lock()
	c := s.calls[m.Request]
	over := 0
	if c != nil {
		// What all the session's streams hold (c's results included) is
		// bounded, not each one's: one result is always taken when none
		// is held.
		// Held decoded (the message's buffers go once it is handled):
		// counted as received, small MsgPack integers, 16 times their
		// size decoded, held 16 times the bound.
		size := max(s.inLen, start-*budget+dcost+heldResult)
		if s.overBacklog(size) {
			over = s.streamHeld
		} else {
			r.size = size
			c.queued += r.size
			s.streamHeld += r.size
			c.queue = append(c.queue, r)
		}
	}
	s.mu.Unlock()
	if over > 0 {
		s.log.Warn("client: a call's progressive results waiting for OnProgress would exceed MaxBacklog, with the session's other streams; canceling it", "request", m.Request, "session_held", over)
		s.cancelCall(m.Request, fmt.Errorf("client: %d bytes of the session's streams waiting for OnProgress and Next: %w", over, ErrBacklog))
		return
	}
	if c != nil {
		c.signal()
	}
}

// cancelCall ends the pending call id with err because of a progressive
// result it cannot take (over the decode budget, or over MaxBacklog):
// the caller cannot be given the results that follow as if it had them
// all. The router is told (CANCEL), or its call, and the callee
// streaming it, would go on for results nobody takes. What the call
// held for OnProgress is dropped.
func (s *Session) cancelCall(id uint64, err error) {
	s.mu.Lock()
	c := s.calls[id]
	if c != nil {
		s.dropQueue(c)
	}
	s.mu.Unlock()
	if c == nil {
		return
	}
	if c.canceled.CompareAndSwap(false, true) {
		cm := &proto.Message{Type: proto.CodeCancel, Request: id}
		if c.mode != "" {
			cm.Opt.SetString(proto.KeyMode, c.mode)
		}
		s.send(cm)
	}
	s.finishCall(id, nil, err)
}

// finishCall completes the pending call id with a result or an error.
func (s *Session) finishCall(id uint64, r *Result, err error) {
	s.mu.Lock()
	c := s.calls[id]
	if c != nil {
		delete(s.calls, id)
		c.final, c.err, c.done = r, err, true
	}
	s.mu.Unlock()
	if c != nil {
		c.finished()
	}
}

// ProgressiveCall is a call whose arguments are sent in chunks (WAMP
// Advanced Profile, §Progressive Call Invocations): every chunk is a CALL
// with the same request id, all but the last with Options.progress=true.
// Send and Result may be called from different goroutines.
type ProgressiveCall struct {
	s         *Session
	c         *call
	ctx       context.Context
	procedure []byte
	first     *options // the options of the first CALL; later ones carry only progress

	mu    sync.Mutex // Guards sent and final; held while a chunk is sent.
	sent  bool
	final bool
}

// CallProgressive starts a call with progressive call invocations. Nothing
// is sent until the first Send. ctx bounds the whole call: once it is done,
// Send fails with ctx.Err() and Result cancels the call as Call does. The
// caller must call Result (after the final Send, or to abandon the call)
// so that the pending call is released. Progressive results that come
// while no Result waits are held for it, within Config.MaxBacklog: past
// it the call is canceled and fails with ErrBacklog. With a callee that
// streams results while it reads the chunks, call Result (once a chunk
// was sent) on another goroutine as the chunks are sent.
func (s *Session) CallProgressive(ctx context.Context, procedure string, opts *CallOptions) (*ProgressiveCall, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.newCall(opts)
	if err != nil {
		return nil, err
	}
	return &ProgressiveCall{s: s, c: c, ctx: ctx, procedure: []byte(procedure), first: s.callOptions(opts)}, nil
}

// ID returns the call's request id.
func (p *ProgressiveCall) ID() uint64 { return p.c.id }

// Send sends one chunk. final marks the last chunk; Send fails with
// ErrFinalSent after it, and with ErrCallDone (wrapping the call's error,
// if any) once the call has ended: the router answered it (a callee may
// answer before the last chunk, or refuse the first), Result gave up on
// it, or the session ended. Nothing is written then: a chunk under the id
// of an ended call could be taken for a new call. A Send that fails
// before writing (ErrMessageTooLarge, a payload that does not encode)
// changes nothing, and may be retried. It blocks until the chunk is
// written.
func (p *ProgressiveCall) Send(args []any, kwargs map[string]any, final bool) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.final {
		return ErrFinalSent
	}
	if err := p.ended(); err != nil {
		return err
	}
	m := &proto.Message{Type: proto.CodeCall, Request: p.c.id, URI: p.procedure}
	// "Except for progress, items in the Options dictionary of the
	// initiating progressive CALL shall be effective for the entirety of
	// the progressive call request." The first chunk's options are a
	// copy of them, so that a first Send that fails leaves them as they
	// were (without progress) for the next.
	o := newOptions(p.s.ser, nil)
	if !p.sent {
		o = p.first.clone()
	}
	if !final {
		o.setBool(proto.KeyProgress, true)
	}
	if err := o.apply(m); err != nil {
		return err
	}
	var err error
	if m.Args, m.Kwargs, err = encodePayload(p.s.ser, args, kwargs); err != nil {
		return err
	}
	// Whether the call ended is asked again once the write lock is held:
	// behind another goroutine's write stuck on a router that does not
	// read, the router's answer may come while Send waits, and the chunk
	// was written under the id of the ended call.
	if err := p.s.lockWrite(p.ctx); err != nil {
		return err
	}
	if err := p.ended(); err != nil {
		p.s.unlockWrite()
		return err
	}
	if err := p.s.sendUnlock(m); err != nil {
		return err
	}
	p.sent = true
	p.final = final
	return nil
}

// ended returns ErrCallDone, wrapping the call's error if any, once the
// call is no longer pending: answered, forgotten by Result, or failed
// with the session.
func (p *ProgressiveCall) ended() error {
	s, c := p.s, p.c
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[c.id] == c && !c.done {
		return nil
	}
	if c.err != nil {
		return fmt.Errorf("%w: %w", ErrCallDone, c.err)
	}
	return ErrCallDone
}

// Result waits for the call's final result, like Call: progressive results
// go to CallOptions.OnProgress on this goroutine, and when ctx or the
// CallProgressive context is done the call is canceled. Before any chunk
// was sent it releases the call and returns ErrNotStarted. It may be
// called again, and by several goroutines at once: each gets the final
// result (progressive results go to whichever waits when they come), or
// ErrCallDone after a Result gave up on the call.
func (p *ProgressiveCall) Result(ctx context.Context) (*Result, error) {
	p.mu.Lock()
	sent := p.sent
	p.mu.Unlock()
	if !sent {
		p.s.forget(p.c.id)
		return nil, ErrNotStarted
	}
	s, c := p.s, p.c
	s.mu.Lock()
	given := s.calls[c.id] != c && !c.done
	s.mu.Unlock()
	if given {
		// An earlier Result gave up on it (its context ended and the
		// router did not answer the CANCEL in time): nothing will come.
		return nil, ErrCallDone
	}
	merged, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	r, err := p.s.await(merged, p.c)
	if errors.Is(err, context.Canceled) && ctx.Err() == nil && p.ctx.Err() != nil {
		err = p.ctx.Err()
	}
	return r, err
}
