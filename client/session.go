package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Session is a joined WAMP session. All its methods are safe for concurrent
// use. It ends when Close is called, when the router says GOODBYE or ABORT,
// or when the transport fails; Done is then closed and Err tells why.
//
// Lock order: the write lock (wlock), then mu or the transport's write
// lock. mu is a leaf:
// it is never held while writing, waiting or calling user code.
type Session struct {
	// Static after Dial.
	cfg     Config
	ser     proto.Serializer
	tr      transport
	id      uint64
	details map[string]any
	log     *slog.Logger
	ctx     context.Context // canceled when the session ends; parent of handler contexts
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed when the session has ended
	closing chan struct{} // closed when Close starts: events are dropped from then on
	evq     chan delivery // event queue, drained by the dispatcher

	// wlock, capacity 1, is the write lock: held (a token in it) while a
	// message is encoded and written; it guards enc and wbuf. A channel,
	// so that a request waiting for it behind a stuck write gives up when
	// its context ends (lockWrite).
	wlock chan struct{}
	enc   proto.Encoder
	wbuf  []byte
	// leaving is set when Close starts: from then on nothing but GOODBYE
	// or ABORT is written (sendUnlock), and, until the GOODBYE is
	// written (saidBye), the answers of running handlers (YIELD, an
	// INVOCATION's ERROR), so that a request that waited for the write
	// lock behind the GOODBYE fails with ErrClosed rather than go out
	// after it, to a router that has ended the session (a Publish
	// without acknowledgement returned nil for an event the router
	// dropped), while a handler's answer goes out before it (refused, its
	// caller got wamp.error.canceled for a call answered).
	leaving atomic.Bool
	saidBye atomic.Bool // set under the write lock as a GOODBYE is written

	onMsg atomic.Pointer[func(*proto.Message)]
	inLen int // Owned by the reader: the size of the message it handles.
	// inProtoDict and inProtoPayload, owned by the reader (and the join
	// before it), tell that the message it handles holds a dictionary
	// key "__proto__" below its Details' top level, or in its payload
	// (proto.Decoder.ProtoKey).
	inProtoDict, inProtoPayload bool
	// busyLogged is when an INVOCATION past MaxInvocations was last
	// logged (nanos): at most once per 10 s.
	busyLogged atomic.Int64
	// dropLog and detailsLog rate-limit the lines of events dropped over
	// the decode budget and of Details left out over theirs: a publisher
	// (through a router that passes payloads through) or a hostile
	// router otherwise had a line written per message.
	dropLog, detailsLog logLimit
	// protoLog rate-limits the lines of Details taken without their
	// keys "__proto__" (dictWithin), written per message otherwise.
	protoLog logLimit
	wg       sync.WaitGroup // the reader, the dispatcher and running handlers

	// The reader waiting for room in the event queue (keepalive, and a
	// Client's handlers: durableSub.acquire).
	parked  atomic.Bool   // it waits now
	resumed atomic.Int64  // when it last stopped waiting (nanos)
	full    chan struct{} // capacity 1; poked when it starts waiting
	// evBytes is the bytes (decoded: onEvent) of the events queued or being
	// handled (Config.MaxBacklog); evRoom, capacity 1, is poked by the
	// dispatcher when it gives some back.
	evBytes atomic.Int64
	evRoom  chan struct{}
	// dispatching is set while the dispatcher runs an event handler;
	// dispatcherWaits counts waits for a reply of this session made on
	// the dispatcher's goroutine (such a handler's Call, Subscribe, ...):
	// while it is not zero the byte bound yields to the count bound, as
	// the reader must read on for the reply (holdRoom). dispatcher is the
	// dispatcher goroutine's id (goid), set as it starts.
	dispatching     atomic.Bool
	dispatcherWaits atomic.Int32
	dispatcher      atomic.Uint64
	// reader is the reader goroutine's id (goid), set as it starts: it
	// starts every invocation Handler's goroutine, whose stack trace
	// names it (Client.Close tells its own Handlers from others' so, at
	// no cost to an invocation).
	reader atomic.Uint64

	mu        sync.Mutex // Guards the fields below.
	nextReq   uint64
	wrapped   bool // nextReq wrapped past 2^53: ids in use are skipped
	calls     map[uint64]*call
	reqs      map[uint64]*request
	abandoned int // how many of reqs are abandoned (see roundTrip)
	regs      map[uint64]*Registration
	subs      map[uint64][]*Subscription // copy-on-write slices
	invs      map[uint64]*invState
	// streamHeld is the bytes (as received) held for the session's
	// invocations' Next and its calls' OnProgress, all of them together:
	// Config.MaxBacklog bounds it. Per invocation and per call, as it was,
	// 16,384 invocations (MaxInvocations) could each hold 16 MiB.
	streamHeld int
	handlers   int // Handlers running (MaxInvocations); an invocation answered early may still run one
	// inClose is how many of the running Handlers wait in a Client.Close
	// for the session's end (handlerCloses): Close does not wait for them.
	inClose int
	// idle, set by Close while handlers run, is closed when the last
	// returns, or all those left wait in Client.Close (runHandler,
	// handlerCloses).
	idle chan struct{}
	// handlerBytes is the size as received of the first chunks of the
	// invocations whose Handlers run, and of their later chunks held for
	// Next (MaxInvocationBytes): counting first chunks only, a stream's
	// chunks waiting for its Handler let another invocation in past it.
	handlerBytes int
	finished     finishedRing
	closed       bool  // Close was called
	err          error // why the session ended; nil while it is alive
	// lost is the error of the requests the end fails: ErrClosed after
	// Close, else err wrapped with ErrSessionLost (lostError), so that
	// a GOODBYE's *Error is not taken for the router's answer. Set with
	// err.
	lost error
}

// lostError is the error of a request whose session ended, otherwise
// than by Close, before its answer: it wraps ErrSessionLost and the
// session's end.
type lostError struct{ end error }

func (e *lostError) Error() string   { return "client: session lost: " + e.end.Error() }
func (e *lostError) Unwrap() []error { return []error{ErrSessionLost, e.end} }

// reqErr is the error of a request on an ended session (lost), or
// ErrClosed once Close has begun; nil while it is alive.
func (s *Session) reqErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == nil && s.closed {
		return ErrClosed
	}
	return s.lost
}

// Dial connects to cfg.URL and joins cfg.Realm: HELLO, then up to 4
// CHALLENGE/AUTHENTICATE rounds (WAMP's methods take one; a fifth
// CHALLENGE aborts the join as a protocol violation), then WELCOME. ctx and cfg.DialTimeout
// bound the whole of it. A router ABORT is returned as an *Error with the
// abort reason as URI. It blocks until the session is joined or failed.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	cfg, ep, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var tr transport
	switch ep.kind {
	case kindWebSocket:
		tr, err = dialWebSocket(ctx, ep, &cfg)
	default:
		tr, err = dialRawSocket(ctx, ep, &cfg)
	}
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg:     cfg,
		ser:     cfg.Serializer,
		tr:      tr,
		log:     cfg.Logger,
		done:    make(chan struct{}),
		closing: make(chan struct{}),
		evq:     make(chan delivery, cfg.EventQueue),
		full:    make(chan struct{}, 1),
		evRoom:  make(chan struct{}, 1),
		wlock:   make(chan struct{}, 1),
		calls:   make(map[uint64]*call),
		reqs:    make(map[uint64]*request),
		regs:    make(map[uint64]*Registration),
		subs:    make(map[uint64][]*Subscription),
		invs:    make(map[uint64]*invState),
	}
	if err := s.join(ctx); err != nil {
		tr.close(false)
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.log = s.log.With("session", s.id)
	s.wg.Add(2)
	go s.readLoop()
	go s.dispatch()
	if cfg.KeepAlive > 0 {
		s.wg.Add(1)
		go s.keepAlive()
	}
	return s, nil
}

// ErrKeepAlive is the error of a session ended because the router did
// not answer the keepalive within Config.KeepAliveTimeout.
var ErrKeepAlive = errors.New("client: the router did not answer the keepalive")

// pongLag bounds the bytes a late answer to a ping may come behind (see
// keepAlive): what a router may have queued before it (edgewamp's
// limits.hard_limit, 4 MiB by default, and the kernels' buffers on both
// sides, up to 10 MiB on Linux), and a message of the largest size (16
// MiB) under way, with room to spare.
const pongLag = 64 << 20

// keepAlive ends the session when the router cannot be heard, on two
// bounds:
//   - silence: nothing from the router (no bytes, no write it takes, see
//     below) for KeepAlive + KeepAliveTimeout;
//   - its ping: KeepAlive after the last answer (after the join at first)
//     it pings the router, silent or not, and the answer (a WebSocket
//     pong, a RawSocket PONG, echoing the ping's number) must come
//     within KeepAliveTimeout of the ping's write. Any bytes counted as
//     the answer, and a router that went on sending but read nothing
//     (its read side wedged, the link lost one way) kept the session for
//     good. The answer may wait behind what the router queued before it,
//     a large message arriving slowly: while it is late, each
//     KeepAliveTimeout that brings writeChunk bytes or more (as a write
//     the router takes counts, and as edgewamp waits for a pong of its
//     own) waits another, up to pongLag bytes since the ping.
//
// While the reader waits for room in the event queue it reads nothing, so
// the router cannot be heard: the checks pause, and start again from the
// moment the reader goes on. They run when the next bound falls due (a
// timer set to it) and when a ping has been written, where a tick of half
// min(KeepAlive, KeepAliveTimeout) noticed a dead router up to that late.
//
// The ping goes out on a goroutine of its own, so that the check never
// waits behind a write: a write stuck on a dead link (a router gone
// without a word, the connection's buffers full) holds the transport's
// write lock, and the ping, written here, waited for it up to
// WriteTimeout before the check ran again. Closing the connection ends
// the stuck write. While a large write is under way, each chunk of it the
// router takes counts as hearing from the router (moving), so that a
// long upload to a router that says nothing meanwhile is not taken for a
// dead link; the ping's bound starts once the ping is written, behind it,
// and from the last chunk the router took it waits as silence does.
func (s *Session) keepAlive() {
	defer s.wg.Done()
	k, to := s.cfg.KeepAlive, s.cfg.KeepAliveTimeout
	start := nanos(s.cfg.now)
	timer := time.NewTimer(max(min(k, to), time.Millisecond))
	defer timer.Stop()
	kick := make(chan struct{}, 1) // a ping was written
	var pinging atomic.Bool        // a ping is being written
	var sentAt, sentRx atomic.Int64
	answered := start    // when the last answer came
	var sent, rx0 int64  // the unanswered ping's write (nanos; 0: none), the bytes received by then
	var win, winRx int64 // the late answer's current wait: its start, the bytes received by then
	check := func(now int64) (due int64, dead bool) {
		resumed := s.resumed.Load()
		moved := s.tr.moving()
		last := max(s.tr.lastRead(), resumed, moved, start)
		if now-last >= int64(k+to) {
			return 0, true
		}
		due = last + int64(k+to)
		if sent == 0 {
			if sent = sentAt.Load(); sent != 0 {
				rx0 = sentRx.Load()
				win, winRx = sent, rx0
			}
		}
		if sent != 0 {
			if p, ok := s.tr.lastPong(); ok {
				answered, sent = max(p, sent), 0
				sentAt.Store(0)
			}
		}
		if sent != 0 {
			// Output of ours the router was taking is before the ping
			// too (the connection's buffers may hold a large write's
			// last megabytes when the write returns): from the last
			// chunk it took, the answer waits as silence does.
			if w := max(resumed, moved+int64(k)); w > win {
				win, winRx = w, s.tr.received()
			}
			if now-win >= int64(to) {
				rx := s.tr.received()
				if rx-winRx < writeChunk || rx-rx0 > pongLag {
					return 0, true
				}
				win, winRx = now, rx
			}
			return min(due, win+int64(to)), false
		}
		pingAt := max(answered, resumed) + int64(k)
		if now < pingAt {
			return min(due, pingAt), false
		}
		if pinging.CompareAndSwap(false, true) {
			s.wg.Add(1) // this goroutine is counted: Close's Wait is not done
			go func() {
				defer s.wg.Done()
				if err := s.tr.ping(); err != nil {
					// Possibly cut mid-frame: nothing more can be written.
					s.shutdown(fmt.Errorf("client: write: %w", err), false)
					return
				}
				sentRx.Store(s.tr.received())
				sentAt.Store(nanos(s.cfg.now))
				pinging.Store(false)
				select {
				case kick <- struct{}{}:
				default:
				}
			}()
		}
		return due, false // the ping's write kicks
	}
	for {
		select {
		case <-s.done:
			return
		case <-timer.C:
		case <-kick:
		}
		now := nanos(s.cfg.now)
		// Parked: nothing falls due until the reader goes on, which
		// is looked at as the ticks did.
		due := now + int64(min(k, to)/2)
		if !s.parked.Load() {
			var dead bool
			if due, dead = check(now); dead {
				s.shutdown(ErrKeepAlive, false)
				return
			}
		}
		// At least 1 ms apart: a KeepAlive of 1 ns ticked every 1 ms.
		timer.Reset(max(time.Duration(due-now), time.Millisecond))
	}
}

// ID returns the session id the router assigned in WELCOME.
func (s *Session) ID() uint64 { return s.id }

// Details returns the WELCOME details (authid, authrole, authmethod,
// roles, ...). The map is shared: do not modify it. Details taking more
// than 1 MiB decoded (a router's take a few KiB) are left out: nil.
func (s *Session) Details() map[string]any { return s.details }

// Done returns a channel closed when the session has ended, for any
// reason. By then every pending request has failed with an error wrapping
// ErrSessionLost and Err (ErrClosed after Close).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended: ErrClosed after Close, an *Error with
// the reason URI when the router said GOODBYE or ABORT (e.g.
// "wamp.close.system_shutdown"), or a transport or protocol error. It is
// nil while the session is alive. Once Close has begun it is ErrClosed,
// as every request then fails with it (nothing but the GOODBYE is
// written), though Done may close only once the router has answered.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && s.closed {
		return ErrClosed
	}
	return s.err
}

// OnMessage sets a hook that observes every message received after the
// join, before the session acts on it; nil removes it. The hook runs on the
// reader goroutine, so it must be quick and must not wait on the session.
// The message and its byte slices are valid only during the call (use
// Message.Clone to keep it). Meant for tests.
func (s *Session) OnMessage(f func(*proto.Message)) {
	if f == nil {
		s.onMsg.Store(nil)
		return
	}
	s.onMsg.Store(&f)
}

// SendRaw encodes m in the session's serializer and sends it as is, with no
// bookkeeping: replies to it are handled like any other message (replies to
// unknown requests are ignored). It is the low-level escape hatch for
// tests. It blocks until the message is written.
func (s *Session) SendRaw(m *proto.Message) error { return s.send(m) }

// send encodes and writes m. A write failure ends the session, and the
// session's error is returned; ErrMessageTooLarge and encoding errors do
// not end it.
func (s *Session) send(m *proto.Message) error { return s.sendCtx(context.Background(), m) }

// sendCtx is send for a request whose context bounds the wait for the
// write lock: behind a write stuck on a router that does not read (held
// up to WriteTimeout), it gives up when ctx ends, with ctx's error and
// nothing written. A write under way is not cut short: cut mid-message,
// the stream would be lost.
func (s *Session) sendCtx(ctx context.Context, m *proto.Message) error {
	select {
	case <-s.done:
		return s.reqErr()
	default:
	}
	if err := s.lockWrite(ctx); err != nil {
		return err
	}
	return s.sendUnlock(m)
}

// lockWrite takes the write lock, waiting within ctx, and while the
// session is alive: it returns ctx's error, or the session's once it has
// ended, without the lock.
func (s *Session) lockWrite(ctx context.Context) error {
	select {
	case s.wlock <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return s.reqErr()
	}
}

func (s *Session) unlockWrite() { <-s.wlock }

// sendUnlock is send for a caller that holds the write lock (to keep what
// it decided and what it writes in order with other writers); it unlocks
// it.
func (s *Session) sendUnlock(m *proto.Message) error {
	if s.leaving.Load() && m.Type != proto.CodeAbort {
		answer := m.Type == proto.CodeYield || m.Type == proto.CodeError && m.ReqType == proto.CodeInvocation
		switch {
		case m.Type == proto.CodeGoodbye:
			s.saidBye.Store(true)
		case !answer || s.saidBye.Load():
			s.unlockWrite()
			return ErrClosed
		}
	}
	b, err := s.enc.Append(s.wbuf[:0], s.ser, m)
	if err != nil {
		s.unlockWrite()
		return fmt.Errorf("client: encoding %s: %w", m.Type, err)
	}
	if cap(b) <= keepBufCap {
		s.wbuf = b
	}
	err = s.tr.writeMsg(b)
	s.unlockWrite()
	if err == nil || errors.Is(err, ErrMessageTooLarge) {
		return err
	}
	s.shutdown(fmt.Errorf("client: write: %w", err), false)
	return s.reqErr()
}

// newRequestID returns the next request id (WAMP §IDs: session scope ids
// start at 1 and increase by 1, wrapping past 2^53). Once they wrapped,
// an id a pending call or request still holds (a long call made before
// the wrap) is skipped: given again, the router ABORTs the session
// (protocol_violation), and the replies of the two would be confused.
// Called with mu held.
func (s *Session) newRequestID() uint64 {
	for {
		s.nextReq++
		if s.nextReq > proto.MaxID {
			s.nextReq = 1
			s.wrapped = true
		}
		if !s.wrapped {
			return s.nextReq
		}
		_, call := s.calls[s.nextReq]
		_, req := s.reqs[s.nextReq]
		if !call && !req {
			return s.nextReq
		}
	}
}

// Close ends the session: it sends GOODBYE (wamp.close.close_realm), waits
// up to Config.ReplyTimeout for the router's GOODBYE (the GOODBYE's write
// included: behind a write stuck on a router that does not read, the
// session ends when ReplyTimeout is spent, and the stuck write with it),
// closes the transport
// and waits for the session's goroutines, running handlers included, to
// return. Handlers see their context canceled as Close starts, and their
// answers (YIELD or ERROR) go out before the GOODBYE: Close waits for them
// up to 2.5 s first (half of the default ReplyTimeout), or half of
// ReplyTimeout when that is shorter (their
// callers got wamp.error.canceled from the router when a handler answered
// after it; a handler that ignores its context holds the GOODBYE that
// long, and is still waited for, after it, before Close returns); an INVOCATION that
// comes meanwhile starts no handler and is answered wamp.error.unavailable
// (the router tries another callee). Close must not be called
// from an event handler or invocation Handler of the same session, since it
// waits for them; call it from another goroutine. Events not yet handled
// when Close is called are dropped, so that a full event queue does not
// hold up the GOODBYE exchange. Once Close has begun nothing but the
// GOODBYE and running handlers' answers is written: a request (Call,
// Publish, ...), or an answer still waiting for its turn to write once
// the GOODBYE is written, fails with ErrClosed, nothing sent (a
// PUBLISH behind the GOODBYE went out after it, to a router that had
// ended the session, and Publish returned nil). It is idempotent and
// returns nil; Err tells how the session ended.
func (s *Session) Close() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	alive := s.err == nil
	s.mu.Unlock()
	s.leaving.Store(true) // before the GOODBYE takes the write lock
	if first {
		close(s.closing)
	}
	if first && alive {
		// ReplyTimeout bounds the whole exchange, the wait for running
		// handlers and the GOODBYE's write included: behind a write stuck
		// on a router that does not read (or stuck itself), the session
		// ends when it is spent, which closes the connection and so ends
		// the stuck write, where Close waited for it to time out
		// (WriteTimeout) before it could send.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReplyTimeout)
		stop := context.AfterFunc(ctx, func() { s.shutdown(ErrClosed, false) })
		// closeHandlerWait at most for the handlers (half of it when
		// that is shorter): the GOODBYE still goes out behind one that
		// ignores its context. Half of ReplyTimeout alone kept the
		// session on the router, its registrations refusing calls, 10 s
		// with a ReplyTimeout raised to 20 s for a slow link.
		hctx, hcancel := context.WithTimeout(ctx, min(s.cfg.ReplyTimeout/2, closeHandlerWait))
		s.awaitHandlers(hctx)
		hcancel()
		m := &proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseCloseRealm)}
		if s.sendCtx(ctx, m) == nil {
			// Written: the guard is for a GOODBYE whose write is stuck.
			// Left armed, at ReplyTimeout it raced the graceful end below
			// and mostly won, and a WebSocket was closed without its close
			// frame.
			stop()
			select {
			case <-s.done:
			case <-ctx.Done():
			}
		}
		stop()
		cancel()
		s.shutdown(ErrClosed, true)
	}
	s.wg.Wait()
	return nil
}

// closeHandlerWait bounds Close's wait for running handlers to answer
// before its GOODBYE (as does half of Config.ReplyTimeout): one that
// answers as its context is canceled does at once, and one finishing
// its work within it gets its answer through. It is what Close waited
// with the default ReplyTimeout, so that a raised ReplyTimeout no longer
// holds the GOODBYE longer and the default's wait is kept: at 1 s, a
// handler finishing 1.5 s of work as Close began had its caller get
// wamp.error.canceled, where it got its result.
const closeHandlerWait = defaultReplyTimeout / 2

// awaitHandlers lets the running handlers answer before Close's GOODBYE,
// within ctx: their contexts are canceled (one waiting for it answers at
// once, wamp.error.canceled), and it waits for the last to return or for
// the session to end. Written after the GOODBYE, their YIELDs were
// refused, and their callers got wamp.error.canceled from the router for
// calls answered. No handler starts once Close has begun (onInvocation).
func (s *Session) awaitHandlers(ctx context.Context) {
	if s.cancel != nil {
		s.cancel(ErrClosed)
	}
	s.mu.Lock()
	if s.handlers <= s.inClose || s.err != nil {
		s.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	s.idle = idle
	s.mu.Unlock()
	select {
	case <-idle:
	case <-s.done:
	case <-ctx.Done():
	}
}

// shutdown ends the session with cause, once: later calls do nothing. It
// closes the transport, fails every pending request with cause, cancels
// the handlers' contexts and closes done. It does not wait for goroutines.
func (s *Session) shutdown(cause error, graceful bool) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err, s.lost = cause, cause
	if cause != ErrClosed {
		s.lost = &lostError{cause}
	}
	lost := s.lost
	calls, reqs := s.calls, s.reqs
	s.calls, s.reqs = nil, nil
	for _, c := range calls {
		c.done, c.err = true, lost
	}
	for _, r := range s.regs {
		r.active.Store(false)
	}
	for _, subs := range s.subs {
		for _, sub := range subs {
			sub.active.Store(false)
		}
	}
	s.regs, s.subs, s.invs = nil, nil, nil
	s.mu.Unlock()

	s.tr.close(graceful)
	if s.cancel != nil {
		s.cancel(cause)
	}
	for _, c := range calls {
		c.finished()
	}
	for _, rq := range reqs {
		rq.reply <- reply{err: lost}
	}
	if h := shutdownHook.Load(); h != nil {
		(*h)(s)
	}
	close(s.done)
	if cause == ErrClosed {
		s.log.Debug("client: session closed")
	} else {
		s.log.Info("client: session ended", "reason", cause)
	}
}

// shutdownHook, when set, runs in shutdown after the pending requests
// were answered and before done is closed. For the tests.
var shutdownHook atomic.Pointer[func(*Session)]

// violation ends the session because the router broke the protocol: it
// sends ABORT wamp.error.protocol_violation with the reason.
func (s *Session) violation(msg string) {
	s.log.Warn("client: protocol violation by the router", "reason", msg)
	s.sendAbort(proto.URIProtocolViolation, msg)
	s.shutdown(fmt.Errorf("client: protocol violation by the router: %s", msg), false)
}

func (s *Session) sendAbort(reason, msg string) {
	m := &proto.Message{Type: proto.CodeAbort, URI: []byte(reason)}
	m.Opt.SetString(proto.KeyMessage, msg)
	s.send(m)
}

// logLimit lets a kind of log line through at most once per logEvery,
// counting the ones it holds back. Safe for concurrent use.
type logLimit struct {
	last atomic.Int64 // when the last line was let through (nanos)
	held atomic.Int64 // lines held back since
}

// logEvery is how often a rate-limited line is written at most.
const logEvery = 10 * time.Second

// allow reports whether a line may be written now (nanos), and how many
// were held back since the last one.
func (l *logLimit) allow(now int64) (ok bool, held int64) {
	last := l.last.Load()
	if last != 0 && now-last < int64(logEvery) || !l.last.CompareAndSwap(last, now) {
		l.held.Add(1)
		return false, 0
	}
	return true, l.held.Swap(0)
}
