package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Handler answers an invocation of a registered procedure. It runs on its
// own goroutine, one per invocation, so a slow handler does not hold up the
// session. Its return value becomes the final YIELD; an error becomes an
// ERROR: an *Error is sent with its URI, payload and details (not one
// wrapped by a request's ErrSessionLost error: the lost session's close
// reason is sent as any other error); an error
// caused by ctx ending (errors.Is context.Canceled or DeadlineExceeded)
// is sent as wamp.error.canceled (or wamp.error.timeout); any other error
// as URIRuntimeError with the error text as its argument. A panic is
// recovered and logged (Config.Logger, at ERROR, with its value and
// stack), and sent as URIRuntimeError with the fixed argument "handler
// panic", not the panic's value (the caller is another party). A YIELD or ERROR larger
// than the router's announced limit (RawSocket) is replaced by an ERROR
// wamp.error.payload_size_exceeded without payload.
//
// ctx is canceled when the router sends INTERRUPT (context.Cause is then
// ErrInterrupted) and when the session ends; it has a deadline when the
// router forwards the call's timeout.
type Handler func(ctx context.Context, inv *Invocation) (*Result, error)

// ErrInterrupted is the context.Cause of a Handler's context canceled by
// the router's INTERRUPT.
var ErrInterrupted = errors.New("client: invocation interrupted by the router")

// RegisterOptions are the options of a registration. The zero value (or
// nil) is an exact, single registration.
type RegisterOptions struct {
	// Match is the match policy: "exact" (the default), "prefix" or
	// "wildcard".
	Match string
	// Invoke is the shared registration policy: "single" (the default),
	// "roundrobin", "random", "first" or "last".
	Invoke string
	// DiscloseCaller asks the router to disclose callers' identities.
	DiscloseCaller bool
	// ForwardTimeout asks the router to forward call timeouts to the callee
	// (the Handler's context then has a deadline).
	ForwardTimeout bool
	// Options are extra raw REGISTER.Options keys; they override the keys
	// above of the same name.
	Options map[string]any
}

// Registration is an active registration.
type Registration struct {
	s         *Session
	procedure string      // Static.
	h         Handler     // Static.
	id        uint64      // Set by the reader before Register returns.
	active    atomic.Bool // Until Unregister, revocation or the session's end.
	// revocation is the reason of the router's revocation, set before
	// active turns false: a Client that records reg after it came acts
	// on it then (Client.revoked could not find it).
	revocation atomic.Pointer[string]
}

// ID returns the registration id the router assigned.
func (r *Registration) ID() uint64 { return r.id }

// Procedure returns the registered procedure URI (or pattern).
func (r *Registration) Procedure() string { return r.procedure }

// Active reports whether the registration is still in place: false after
// Unregister, after the router revoked it, and after the session ended.
func (r *Registration) Active() bool { return r.active.Load() }

// Invocation is one invocation of a registered procedure, or one chunk of a
// progressive call invocation.
type Invocation struct {
	Args    []any
	Kwargs  map[string]any
	Details map[string]any
	// Procedure is INVOCATION.Details.procedure (the called URI, for
	// pattern registrations), or the registered URI.
	Procedure string
	// Caller, CallerAuthID and CallerAuthRole identify the caller when the
	// router discloses it.
	Caller         uint64
	CallerAuthID   string
	CallerAuthRole string
	// Registration is the registration id.
	Registration uint64
	// Progress is true when more chunks of a progressive call invocation
	// follow this one (INVOCATION.Details.progress); read them with Next.
	Progress bool

	st   *invState
	size int // the chunk's size as received, while queued for Next
}

// invState is the state shared by all chunks of one invocation.
type invState struct {
	s               *Session
	req             uint64                  // Static: INVOCATION.Request.
	reg             uint64                  // Static: INVOCATION.Registration.
	receiveProgress bool                    // Static: the caller wants progressive results.
	cancel          context.CancelCauseFunc // Static.
	wake            chan struct{}           // Static; capacity 1.

	chunks []*Invocation // Guarded by Session.mu: chunks not yet taken by Next.
	queued int           // Guarded by Session.mu: their bytes as received (Config.MaxBacklog).
	// err, guarded by Session.mu, is why the invocation ended before its
	// final chunk came (its chunks were refused): Next returns it.
	err         error
	lastIn      bool // Guarded by Session.mu: the final chunk arrived.
	interrupted bool // Guarded by Session.mu.
	mode        proto.CancelMode

	amu      sync.Mutex // Held while a YIELD or ERROR of this invocation is sent.
	answered bool       // Guarded by amu.
}

// Register registers procedure with handler h and waits for the router's
// REGISTERED. A refusal is returned as an *Error (e.g.
// wamp.error.procedure_already_exists). The registration is in place, and
// invocations may arrive, before Register returns. When ctx has already
// ended nothing is sent and ctx.Err() is returned. A nil h is refused
// with ErrNilHandler, nothing sent (taken, every call of the procedure
// panicked in the callee and failed its caller with
// wamp.error.runtime_error).
func (s *Session) Register(ctx context.Context, procedure string, h Handler, opts *RegisterOptions) (*Registration, error) {
	if h == nil {
		return nil, ErrNilHandler
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &proto.Message{Type: proto.CodeRegister, URI: []byte(procedure)}
	o := newOptions(s.ser, nil)
	if opts != nil {
		o.extra = opts.Options
		if opts.Match != "" {
			o.setString(proto.KeyMatch, opts.Match)
		}
		if opts.Invoke != "" {
			o.setString(proto.KeyInvoke, opts.Invoke)
		}
		if opts.DiscloseCaller {
			o.setBool(proto.KeyDiscloseCaller, true)
		}
		if opts.ForwardTimeout {
			o.setBool(proto.KeyForwardTimeout, true)
		}
	}
	if err := o.apply(m); err != nil {
		return nil, err
	}
	rq := newRequest(proto.CodeRegister)
	rq.reg = &Registration{s: s, procedure: procedure, h: h}
	id, err := s.addRequest(rq)
	if err != nil {
		return nil, err
	}
	if _, err := s.roundTrip(ctx, m, id, rq); err != nil {
		return nil, err
	}
	return rq.reg, nil
}

// Unregister removes r and waits for the router's UNREGISTERED. From the
// moment it is called, new invocations of r are refused; running ones
// continue. When ctx has already ended nothing is done and ctx.Err() is
// returned.
//
// [UNREGISTER, Request|id, REGISTERED.Registration|id]
func (s *Session) Unregister(ctx context.Context, r *Registration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait, err := s.startUnregister(r)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// startUnregister takes r off the session and sends UNREGISTER, whatever
// a context says (Client.Unregister sends every UNREGISTER it decided on
// before it waits for any); wait waits for UNREGISTERED.
func (s *Session) startUnregister(r *Registration) (wait func(context.Context) error, err error) {
	rq := newRequest(proto.CodeUnregister)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.lost
	}
	if s.regs[r.id] != r {
		s.mu.Unlock()
		return nil, ErrNotRegistered
	}
	delete(s.regs, r.id)
	r.active.Store(false)
	id := s.addRequestLocked(rq)
	s.mu.Unlock()
	if err := s.sendRequest(context.Background(), &proto.Message{Type: proto.CodeUnregister, ID: r.id}, id, rq); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := s.awaitReply(ctx, id, rq)
		return err
	}, nil
}

// onInvocation starts a handler for a new INVOCATION, or hands a further
// chunk of a progressive call invocation to the running one.
//
// [INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict, Arguments|list, ArgumentsKw|dict]
func (s *Session) onInvocation(m *proto.Message) {
	if bad := s.reusedInvocationID(m); bad != "" {
		s.violation(bad)
		return
	}
	if s.refusedUndecoded(m) {
		return
	}
	budget := measuredBudget(s.decodeBudget(s.inLen))
	start := *budget
	args, kwargs, err := s.payloadOf(m, budget)
	if err != nil {
		e := &Error{URI: proto.URIInvalidArgument, Args: []any{err.Error()}}
		s.mu.Lock()
		st := s.invs[m.Request]
		s.mu.Unlock()
		if st != nil {
			// A later chunk of a running progressive invocation: the
			// invocation ends with the error (failInvocation).
			s.failInvocation(st, e, err)
			return
		}
		if m.Opt.Bool(proto.KeyProgress, false) {
			// The first chunk of a progressive invocation: its later
			// chunks, sent before the router has the ERROR, are dropped
			// as those of an invocation answered early, not taken for a
			// new one.
			s.mu.Lock()
			if s.invs != nil {
				s.finished.add(m.Request)
			}
			s.mu.Unlock()
		}
		s.sendError(proto.CodeInvocation, m.Request, e)
		return
	}
	details, dcost := s.dictOfCost(m.Dict)
	// What the invocation holds is its decoded values (the message's
	// buffers go once it is handled), as the decode budget estimates
	// them, or its size as received when that is more: counted as
	// received, small MsgPack integers (16 times their size decoded) had
	// a callee hold 16 times MaxInvocationBytes. The Invocation holding
	// them counts too (heldInvocation).
	decoded := start - *budget + dcost
	inv := &Invocation{
		Args:           args,
		Kwargs:         kwargs,
		Details:        details,
		Procedure:      m.Opt.String(proto.KeyProcedure),
		Caller:         m.Opt.Uint(proto.KeyCaller),
		CallerAuthID:   m.Opt.String(proto.KeyCallerAuthID),
		CallerAuthRole: m.Opt.String(proto.KeyCallerAuthRole),
		Registration:   m.ID,
		Progress:       m.Opt.Bool(proto.KeyProgress, false),
	}
	decoded += len(inv.Procedure) + len(inv.CallerAuthID) + len(inv.CallerAuthRole)
	size := max(s.inLen, decoded+heldInvocation)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if st := s.invs[m.Request]; st != nil {
		inv.st = st
		// What all the session's streams hold (st's chunks included) is
		// bounded, not each one's: one chunk is always taken when none
		// is held.
		if s.overBacklog(size) {
			held := s.streamHeld
			s.mu.Unlock()
			s.log.Warn("client: a progressive invocation's chunks waiting for its handler would exceed MaxBacklog, with the session's other streams; ending it", "procedure", inv.Procedure, "request", m.Request, "queued", st.queued, "session_held", held)
			s.failInvocation(st, &Error{URI: proto.URIPayloadSizeExceeded, Details: map[string]any{
				"message": "the chunks of the progressive call waiting for the callee exceed its backlog limit",
			}}, ErrBacklog)
			return
		}
		inv.size = size
		st.queued += inv.size
		s.streamHeld += inv.size
		s.handlerBytes += inv.size // held for the running Handler, as its first chunk is
		st.chunks = append(st.chunks, inv)
		st.lastIn = !inv.Progress
		s.mu.Unlock()
		st.signal()
		return
	}
	if s.finished.has(m.Request) {
		// A chunk for an invocation already answered.
		if !inv.Progress {
			s.finished.remove(m.Request)
		}
		s.mu.Unlock()
		return
	}
	if s.closed {
		s.refuseClosing(m)
		return
	}
	reg := s.regs[m.ID]
	if reg == nil {
		s.mu.Unlock()
		// Unregistered meanwhile. wamp.error.unavailable is the callee's
		// "not here" of WAMP's call re-routing: edgewamp (which announces
		// call_reroute) offers the call to another callee of a shared
		// registration, or answers the caller no_available_callee.
		s.sendError(proto.CodeInvocation, m.Request, &Error{URI: proto.URIUnavailable})
		return
	}
	if s.busyLocked(size) {
		s.refuseBusy(m, size, inv.Procedure)
		return
	}
	s.startInvocation(m, reg, inv, size)
}

// refuseBusy refuses the INVOCATION m, holding size bytes, of a session
// as busy as it may be: as "not here", which the router offers to
// another callee of a shared registration, or answers the caller
// no_available_callee. A first chunk's later ones are dropped as those of
// an invocation answered early. Called with mu held; it unlocks it.
func (s *Session) refuseBusy(m *proto.Message, size int, procedure string) {
	if m.Opt.Bool(proto.KeyProgress, false) {
		s.finished.add(m.Request)
	}
	running, held := s.handlers, s.handlerBytes
	s.mu.Unlock()
	if now := nanos(s.cfg.now); now-s.busyLogged.Load() > int64(10*time.Second) {
		s.busyLogged.Store(now)
		s.log.Warn("client: refusing invocations past MaxInvocations or MaxInvocationBytes of running handlers", "max_invocations", s.cfg.MaxInvocations, "running", running,
			"max_invocation_bytes", s.cfg.MaxInvocationBytes, "running_bytes", held, "size", size, "procedure", procedure)
	}
	s.sendError(proto.CodeInvocation, m.Request, &Error{URI: proto.URIUnavailable, Details: map[string]any{
		"message": "the callee runs as many invocations as it takes at once",
	}})
}

// refuseClosing refuses the INVOCATION m of a session whose Close has
// begun: no new handler starts. It was dropped unanswered, and while
// Close waits for the running handlers (awaitHandlers) its caller waited
// for the GOODBYE to get wamp.error.canceled; "not here" has the router
// offer it to another callee, or answer the caller no_available_callee.
// A first chunk's later ones are dropped as those of an invocation
// answered early. Called with mu held; it unlocks it.
func (s *Session) refuseClosing(m *proto.Message) {
	if m.Opt.Bool(proto.KeyProgress, false) {
		s.finished.add(m.Request)
	}
	s.mu.Unlock()
	s.sendError(proto.CodeInvocation, m.Request, &Error{URI: proto.URIUnavailable})
}

// refusedUndecoded refuses, before its payload is decoded, an INVOCATION
// that starts no Handler whatever it holds: one of a registration the
// session does not hold, one past Config.MaxInvocations, or one that
// comes once Close has begun. It reports
// whether it did. Decoded first, each such refusal built and threw away
// Go values of up to DecodeRatio times the message plus 64 KiB: 30 of
// 50 KB of small MsgPack integers allocated 27.7 MB at a full callee.
// Anything else (a later chunk, an invocation answered early, the bytes
// bound, which needs the decoded size) is left to
// onInvocation.
func (s *Session) refusedUndecoded(m *proto.Message) bool {
	s.mu.Lock()
	if s.err != nil || s.invs[m.Request] != nil || s.finished.has(m.Request) {
		s.mu.Unlock()
		return false
	}
	if s.closed {
		s.refuseClosing(m)
		return true
	}
	reg := s.regs[m.ID]
	if reg == nil {
		s.mu.Unlock()
		// As onInvocation's: unregistered meanwhile.
		s.sendError(proto.CodeInvocation, m.Request, &Error{URI: proto.URIUnavailable})
		return true
	}
	if lim := s.cfg.MaxInvocations; lim > 0 && s.handlers >= lim {
		procedure := m.Opt.String(proto.KeyProcedure)
		if procedure == "" {
			procedure = reg.procedure
		}
		s.refuseBusy(m, s.inLen, procedure)
		return true
	}
	s.mu.Unlock()
	return false
}

// busyLocked reports whether a new invocation holding n bytes would take
// the running Handlers past Config.MaxInvocations, or what the session
// holds for them (their first chunks and the later ones waiting for
// Next) past Config.MaxInvocationBytes (one is always taken when none
// runs). Called with mu held.
func (s *Session) busyLocked(n int) bool {
	if lim := s.cfg.MaxInvocations; lim > 0 && s.handlers >= lim {
		return true
	}
	lim := s.cfg.MaxInvocationBytes
	return lim > 0 && s.handlers > 0 && s.handlerBytes+n > lim
}

// failInvocation ends the running invocation st whose further chunk was
// refused (over the decode budget, or over MaxBacklog): it is answered
// with e (later chunks are dropped), what it held for Next is dropped,
// and its handler's context is canceled with cause, which Next returns,
// so that a Next waiting for a chunk returns (also one with a context
// that never ends). In that order: canceled first, the handler could
// answer first (its context's error, wamp.error.canceled) and e be
// dropped.
func (s *Session) failInvocation(st *invState, e *Error, cause error) {
	s.answer(s.ctx, st, nil, e, cause)
	s.mu.Lock()
	s.streamHeld -= st.queued
	s.handlerBytes -= st.queued
	st.chunks, st.queued, st.err = nil, 0, cause
	s.mu.Unlock()
	st.cancel(cause)
	st.signal()
}

// reusedInvocationID returns why the INVOCATION m is a protocol
// violation, or "": it has the request id of an invocation whose handler
// runs, and is not a further chunk of it: that invocation's final chunk
// came already, or m names another registration (WAMP: a request id
// names one pending request; the chunks of a progressive call
// invocation share the first's id and registration). Taken for a chunk,
// it went to a handler that does not ask for one (or to another
// registration's), and its call was never answered.
func (s *Session) reusedInvocationID(m *proto.Message) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.invs[m.Request]
	switch {
	case st == nil:
		return ""
	case m.ID != st.reg:
		return fmt.Sprintf("INVOCATION %d for registration %d while invocation %d of registration %d runs", m.Request, m.ID, m.Request, st.reg)
	case st.lastIn:
		return fmt.Sprintf("INVOCATION %d after its final chunk", m.Request)
	}
	return ""
}

// startInvocation starts reg's handler for the first chunk inv of the
// INVOCATION m, which holds size bytes. Called with mu held; it unlocks
// it.
func (s *Session) startInvocation(m *proto.Message, reg *Registration, inv *Invocation, size int) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	st := &invState{
		s:               s,
		req:             m.Request,
		reg:             m.ID,
		receiveProgress: m.Opt.Bool(proto.KeyReceiveProgress, false),
		cancel:          cancel,
		wake:            make(chan struct{}, 1),
		lastIn:          !inv.Progress,
	}
	inv.st = st
	if inv.Procedure == "" {
		inv.Procedure = reg.procedure
	}
	s.invs[m.Request] = st
	s.handlers++
	s.handlerBytes += size
	s.wg.Add(1)
	s.mu.Unlock()
	stopTimer := context.CancelFunc(func() {})
	// A timeout too long for a time.Duration (over 292 years) is none:
	// converted, it would overflow into an expired context.
	if ms := m.Opt.Uint(proto.KeyTimeout); ms > 0 && ms <= uint64(math.MaxInt64/int64(time.Millisecond)) {
		ctx, stopTimer = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
	}
	go s.runHandler(ctx, reg.h, inv, size, func() { stopTimer(); cancel(nil) })
}

func (st *invState) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// runHandler runs h for inv on its own goroutine and answers.
func (s *Session) runHandler(ctx context.Context, h Handler, inv *Invocation, size int, release func()) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.handlers--
		s.handlerBytes -= size
		if s.handlers == s.inClose && s.idle != nil {
			close(s.idle) // Close waits for it (awaitHandlers)
			s.idle = nil
		}
		s.mu.Unlock()
	}()
	defer release()
	res, err := s.callHandler(ctx, h, inv)
	s.answer(ctx, inv.st, res, err, ErrInvocationDone)
}

// handlerCloses is called by Client.Close from one of s's Handlers before
// it waits for s's end: s's Close no longer waits for that Handler before
// its GOODBYE (awaitHandlers), as the Handler returns only after the end
// (the GOODBYE was held closeHandlerWait). Calling done undoes it, once
// the wait is over. Safe for concurrent use.
func (s *Session) handlerCloses() (done func()) {
	s.mu.Lock()
	s.inClose++
	if s.handlers <= s.inClose && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.inClose--
		s.mu.Unlock()
	}
}

// callHandler runs h, recovering a panic: it is logged here, with its
// value and stack, and the caller gets errHandlerPanic, which says
// nothing of it. The value was sent ("handler panic: " and the value),
// to whichever caller the router let call the procedure: a value
// formatted from the callee's state (a token, a path, a query) went to
// another party.
func (s *Session) callHandler(ctx context.Context, h Handler, inv *Invocation) (res *Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("client: handler panic; the caller gets "+URIRuntimeError+" without its value", "procedure", inv.Procedure, "request", inv.st.req, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, &Error{URI: URIRuntimeError, Args: []any{handlerPanicText}}
		}
	}()
	return h(ctx, inv)
}

// handlerPanicText is the argument of the ERROR a caller gets for a
// Handler that panicked.
const handlerPanicText = "handler panic"

// answer sends the final YIELD or ERROR of an invocation, once. After an
// INTERRUPT in killnowait mode nothing is sent: the router does not wait.
// Answered before its final chunk, the invocation gets no chunk any more
// (late ones are dropped): a Next waiting for one returns end from then
// on (it waited, with a context other than the handler's, until the
// session ended).
//
// [YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]
func (s *Session) answer(ctx context.Context, st *invState, res *Result, herr, end error) {
	st.amu.Lock()
	defer st.amu.Unlock()
	if st.answered {
		return
	}
	st.answered = true
	s.mu.Lock()
	interrupted, mode := st.interrupted, st.mode
	if s.invs != nil {
		delete(s.invs, st.req)
		if !st.lastIn {
			s.finished.add(st.req)
			if st.err == nil {
				st.err = end
			}
		}
		// Chunks its handler did not take are dropped, and no more
		// come: their bytes go back to the session's bound.
		s.streamHeld -= st.queued
		s.handlerBytes -= st.queued
		st.chunks, st.queued = nil, 0
	}
	s.mu.Unlock()
	st.signal()
	if interrupted && mode == proto.CancelKillNoWait {
		return
	}
	if herr != nil {
		s.sendError(proto.CodeInvocation, st.req, invocationError(ctx, herr))
		return
	}
	m := &proto.Message{Type: proto.CodeYield, Request: st.req}
	if res != nil {
		var err error
		if m.Args, m.Kwargs, err = encodePayload(s.ser, res.Args, res.Kwargs); err != nil {
			s.sendError(proto.CodeInvocation, st.req, &Error{URI: URIRuntimeError, Args: []any{err.Error()}})
			return
		}
	}
	if err := s.send(m); errors.Is(err, ErrMessageTooLarge) {
		// Nothing was written and the session goes on: the caller must
		// still get an answer.
		s.tooLarge(proto.CodeInvocation, st.req, "YIELD")
	}
}

// invocationError maps a Handler's error to the WAMP error sent back. A
// request's error for its lost session (ErrSessionLost, say of a call the
// Handler made on another session) is a runtime error: the *Error it
// wraps is that session's GOODBYE or ABORT reason, no answer to send.
func invocationError(ctx context.Context, err error) *Error {
	if errors.Is(err, ErrSessionLost) {
		return &Error{URI: URIRuntimeError, Args: []any{err.Error()}}
	}
	if we, ok := errors.AsType[*Error](err); ok {
		return we
	}
	if ctx.Err() != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return &Error{URI: proto.URITimeout}
		case errors.Is(err, context.Canceled):
			return &Error{URI: proto.URICanceled}
		}
	}
	return &Error{URI: URIRuntimeError, Args: []any{err.Error()}}
}

// sendError sends an ERROR for a request of type typ.
//
// [ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list, ArgumentsKw|dict]
func (s *Session) sendError(typ proto.Code, req uint64, e *Error) {
	m := &proto.Message{Type: proto.CodeError, ReqType: typ, Request: req, URI: []byte(e.URI)}
	if err := newOptions(s.ser, e.Details).apply(m); err != nil {
		s.log.Warn("client: cannot encode error details", "error", err)
	}
	a, k, err := encodePayload(s.ser, e.Args, e.Kwargs)
	if err != nil {
		a, k = proto.Raw{}, proto.Raw{}
		m.URI = []byte(URIRuntimeError)
		a, _ = proto.EncodeValue(s.ser, []any{err.Error()})
	}
	m.Args, m.Kwargs = a, k
	if err := s.send(m); errors.Is(err, ErrMessageTooLarge) {
		s.tooLarge(typ, req, "ERROR")
	}
}

// tooLarge answers a request whose YIELD or ERROR (what) exceeds the
// router's message limit with ERROR wamp.error.payload_size_exceeded,
// without payload, so that the caller is not left waiting.
func (s *Session) tooLarge(typ proto.Code, req uint64, what string) {
	s.log.Warn("client: answer exceeds the router's message limit; sending "+proto.URIPayloadSizeExceeded, "message", what, "request", req)
	m := &proto.Message{Type: proto.CodeError, ReqType: typ, Request: req, URI: []byte(proto.URIPayloadSizeExceeded)}
	m.Opt.SetString(proto.KeyMessage, "the "+what+" exceeds the router's message limit")
	s.send(m)
}

// onInterrupt cancels the handler of an invocation (WAMP Advanced Profile,
// §Call Canceling). In kill mode the handler's answer is still sent (as
// wamp.error.canceled when it returns ctx's error); in killnowait mode
// nothing is sent.
//
// [INTERRUPT, INVOCATION.Request|id, Options|dict]
func (s *Session) onInterrupt(m *proto.Message) {
	// An INTERRUPT of an invocation answered early (the caller's CANCEL
	// reached the router before the YIELD) leaves it among the finished
	// ones: the router may still forward chunks the caller sent (edgewamp
	// does after a kill-mode CANCEL), and taken out, they were taken for
	// a new invocation, the handler run again on a fragment of the call.
	s.mu.Lock()
	st := s.invs[m.Request]
	if st != nil {
		st.interrupted = true
		st.mode = m.Opt.CancelMode(proto.CancelKill)
	}
	s.mu.Unlock()
	if st != nil {
		st.cancel(ErrInterrupted)
	}
}

// SendProgress sends a progressive result (YIELD with
// Options.progress=true). It fails with ErrNoProgress when the caller did
// not ask for progressive results, with ErrInvocationDone once the
// invocation was answered, and with ErrMessageTooLarge (nothing sent) for
// a result over the router's limit. It may be called from any goroutine
// until the Handler returns.
func (inv *Invocation) SendProgress(args []any, kwargs map[string]any) error {
	st := inv.st
	if !st.receiveProgress {
		return ErrNoProgress
	}
	m := &proto.Message{Type: proto.CodeYield, Request: st.req}
	m.Opt.SetBool(proto.KeyProgress, true)
	var err error
	if m.Args, m.Kwargs, err = encodePayload(st.s.ser, args, kwargs); err != nil {
		return err
	}
	st.amu.Lock()
	defer st.amu.Unlock()
	if st.answered {
		return ErrInvocationDone
	}
	return st.s.send(m)
}

// Next waits for the next chunk of a progressive call invocation. It
// returns io.EOF after the final chunk (at once when inv.Progress is
// false on the first one), ctx's error when ctx ends first, and an error
// wrapping ErrSessionLost and the session's error (Session.Err; ErrClosed
// after Close) when the session ends first, and
// ErrBacklog once the chunks not taken exceeded Config.MaxBacklog (the
// invocation was then answered with an error), and ErrInvocationDone once
// the Handler answered before the final chunk came (no chunk comes then). Chunks queue up, within
// Config.MaxBacklog, until Next takes them.
func (inv *Invocation) Next(ctx context.Context) (*Invocation, error) {
	st := inv.st
	s := st.s
	for {
		s.mu.Lock()
		if len(st.chunks) > 0 {
			c := st.chunks[0]
			st.chunks[0] = nil
			st.chunks = st.chunks[1:]
			st.queued -= c.size
			s.streamHeld -= c.size
			s.handlerBytes -= c.size // the Handler's from now on
			c.size = 0
			s.mu.Unlock()
			return c, nil
		}
		last, err := st.lastIn, st.err
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if last {
			return nil, io.EOF
		}
		select {
		case <-st.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			// No chunk will come: the session ended (connection lost,
			// router GOODBYE, Close).
			return nil, s.reqErr()
		}
	}
}

// finishedRing remembers the last maxFinished invocations answered before
// their final chunk arrived, so that late chunks (sent by the router
// before it had the answer) are dropped rather than taken for new
// invocations. A late chunk of an older one would still start the
// handler again; maxFinished early answers between an answer and its late
// chunks (a network round trip) is far beyond what a callee sees. Ids
// leave it when their final chunk arrives (not when an INTERRUPT names
// them: chunks may follow it).
// Guarded by Session.mu; its memory grows with use, up to about 100 KiB.
type finishedRing struct {
	ids  []uint64 // FIFO, up to maxFinished; a removed id stays until overwritten
	next int      // where the next id goes once ids is full
	set  map[uint64]struct{}
}

// maxFinished is how many early-answered invocations a session remembers
// (64 until found short by review: a 65th early answer made a late chunk
// of the first run the handler again).
const maxFinished = 4096

func (r *finishedRing) add(id uint64) {
	if r.set == nil {
		r.set = make(map[uint64]struct{})
	}
	if len(r.ids) < maxFinished {
		r.ids = append(r.ids, id)
	} else {
		delete(r.set, r.ids[r.next])
		r.ids[r.next] = id
		r.next = (r.next + 1) % maxFinished
	}
	r.set[id] = struct{}{}
}

func (r *finishedRing) has(id uint64) bool {
	_, ok := r.set[id]
	return ok
}

func (r *finishedRing) remove(id uint64) {
	delete(r.set, id)
}
