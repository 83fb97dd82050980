package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Client is a session that survives the loss of its router: when the
// connection fails it dials again, with backoff, trying the router URLs in
// turn (a mesh's nodes), joins again and restores its registrations and
// subscriptions. Create it with Connect.
//
// What it promises, and what not:
//   - Registrations and subscriptions made through the Client are
//     restored on every new session. A restored single registration may
//     be refused for a while (the mesh still holds the one of the session
//     that was lost, until it notices that node is gone), and a busy
//     router may refuse any restore (wamp.error.unavailable): the Client
//     keeps retrying those with backoff on the same session. A restore
//     the router is slow to answer is waited for, not sent again (a
//     second REGISTER or SUBSCRIBE would race the late answer to the
//     first). Other refusals (not authorized any more, say) are logged
//     at WARN (Config.Logger) and not retried. A registration the
//     router revokes for such a reason (a mesh's loser of a conflict
//     found on heal: procedure_already_exists) is made again on the same
//     session, with backoff, as a restore is; one revoked for another
//     reason, and a revoked subscription, is logged at WARN and made
//     again on the next session. Unregister and Unsubscribe remove them.
//   - Calls and acknowledged publications are not retried: a call in
//     flight when the connection fails returns the session's error
//     (wrapped with ErrSessionLost), since
//     the Client cannot know whether the callee ran it (WAMP calls are not
//     idempotent). Calls made while reconnecting wait (bounded by their
//     context) for the next session, not for its restores: they may go
//     out before the restored registrations are in place.
//   - Events published while no session is up are not received.
//   - The event handlers of subscriptions made through the Client run one
//     at a time, as a session's do, also across sessions: a handler the
//     lost session is still running holds up the next session's events
//     (which queue up, see the package documentation) until it returns,
//     or until they fill the next session's event queue: they then run
//     beside it, one at a time and in order. Waiting longer would stop
//     the next session's reader, and a handler waiting for an answer on
//     the next session (a Call, a Subscribe) would never get it.
//
// All methods are safe for concurrent use.
type Client struct {
	cfg         Config
	urls        []string
	rc          ReconnectConfig
	log         func(msg string, args ...any)
	warn        func(msg string, args ...any) // what the application must hear of
	errorLog    func(msg string, args ...any) // a callback's panic
	restoreWait time.Duration                 // Static: see restore.
	// callbacks counts the Client's OnSession, OnDisconnect and OnChallenge calls
	// running (callback), and cbGoroutines, guarded by cbMu, names the
	// goroutines running them (goid): Close and Session tell a call from
	// the Client's own callback (inCallback) from any other, another
	// Client's callback included.
	callbacks    atomic.Int32
	cbMu         sync.Mutex
	cbGoroutines []uint64
	// challenging is set while a call of Config.OnChallenge runs: the
	// Client calls it one at a time (see Connect).
	challenging atomic.Bool
	// events holds a token while an event handler of a subscription
	// made through Subscribe runs: a session runs them one at a time on
	// its dispatcher, and a lost session's dispatcher may still be
	// running one when the next session's first events come
	// (durableSub.acquire). Capacity 1.
	events chan struct{}

	mu      sync.Mutex // Guards the fields below.
	s       *Session   // the current session; nil while reconnecting
	up      chan struct{}
	regs    []*durableReg
	subs    []*durableSub
	closed  bool
	lastErr error
	// served lists the sessions whose handlers may run: the current one
	// and the lost ones whose goroutines have not all returned. Close,
	// called from a handler, looks for its caller among their dispatchers
	// and readers (whoseHandler).
	served []*Session

	ctx    context.Context // canceled by Close: stops reconnecting, bounds dials and restores
	cancel context.CancelFunc
	done   chan struct{}
	// lostRunning counts the lost sessions whose goroutines, their
	// handlers, may still run (serve): the Client's goroutine waits for
	// them before it ends, and so Close does, as it waits for those of a
	// session it ends. Added to and waited for by that goroutine only.
	lostRunning sync.WaitGroup
}

// ReconnectConfig tunes Connect.
type ReconnectConfig struct {
	// URLs are the routers to try, in turn; Config.URL is tried first
	// when set.
	URLs []string
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure (with ±25% jitter, within the two
	// bounds). Defaults 100ms and 5s.
	// After a session that lasted MaxBackoff or more the first attempt
	// waits a random part of MinBackoff (clients that lost their router
	// together do not redial it together); after a shorter one, the
	// backoff applies as after a failed attempt.
	MinBackoff, MaxBackoff time.Duration
	// OnSession, if set, is called (on the Client's goroutine) with each
	// new session, after the router's first answer to the restore of each
	// registration and subscription, or 10 s without one (restores it
	// refused for a reason that may pass are retried in the background,
	// and slow answers waited for: OnSession does not wait for them).
	// It may call Client.Close (see there). A Client request from it
	// (Call, Publish, Register, Subscribe, Session) goes to the session
	// it was given; once that one is lost it fails with ErrInCallback
	// (the next session is dialled after OnSession returns), and a
	// Register or Subscribe failing so is not kept (see Client.Register).
	// It is not called once Close
	// has been called, nor for a session lost before the restores were
	// answered (OnDisconnect is, with its end); a session may still end
	// while OnSession runs (see Session.Done). A panic in it is recovered
	// and logged at ERROR (Config.Logger), and the Client goes on.
	OnSession func(*Session)
	// OnDisconnect, if set, is called (on the Client's goroutine) with
	// the error that ended a session, before the Client dials again. It
	// may call Client.Close, to give up on an error it takes for fatal.
	// A Client request from it (a Publish, say) fails with ErrInCallback:
	// there is no session, and the next one comes after it returns (a
	// Register or Subscribe failing so is not kept: see Client.Register).
	// It is not called once Close has been called, also for a session
	// that ended before (Close from OnSession returns at once: no
	// callback starts after it has returned). A panic in it is recovered
	// and logged at ERROR, and the Client dials again.
	OnDisconnect func(error)
}

type durableReg struct {
	procedure string
	h         Handler
	// opts is a copy of Register's: the caller's, kept, could be changed
	// after the call (one options value reused for the next Register
	// with another match policy), and every later session restored the
	// registration with what they had become.
	opts *RegisterOptions
	cur  *Registration // on the latest session that took it; guarded by Client.mu
	// removed by Client.Unregister: set under Client.mu, read by the
	// handler the sessions run (handler) without it.
	removed atomic.Bool
}

type durableSub struct {
	events  chan struct{} // Static: the Client's.
	topic   string
	h       func(*Event)
	opts    *SubscribeOptions // a copy of Subscribe's, as durableReg's
	cur     *Subscription     // as durableReg's
	removed atomic.Bool

	// With get_retained (Static: retained), every session's SUBSCRIBE
	// asks for the retained events, so that one published while no
	// session was up (a changed state) is delivered; the publication id
	// of the last event the handler was given on each topic is kept, and
	// a retained event with it, which the handler had already, is
	// dropped: it came again at every reconnection. An exact
	// subscription keeps it in last, a pattern one in seen (at most
	// maxSeenTopics topics; past it a topic's retained event may come
	// again), by the topic's hash under seed: the topics themselves,
	// URIs of up to 4 KiB that any publisher under the pattern chooses,
	// were kept, up to 270 MB. Two topics of one hash share an entry:
	// a retained event is dropped only when its publication id, random
	// and its own, is the entry's.
	retained bool
	exact    bool // Static: an exact subscription
	last     atomic.Uint64
	seenMu   sync.Mutex
	seed     maphash.Seed // set with seen
	seen     map[uint64]uint64
}

// maxSeenTopics bounds the topics a pattern subscription with
// get_retained remembers an event of (the router's bound on retained
// topics: 65,536).
const maxSeenTopics = 1 << 16

// had reports whether ev is a retained event the handler was given
// already, and else records it as the topic's last.
func (d *durableSub) had(ev *Event) bool {
	id := ev.PublicationID
	if !d.retained || id == 0 {
		return false
	}
	if d.exact {
		return d.last.Swap(id) == id && ev.Retained
	}
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	if d.seen == nil {
		d.seed, d.seen = maphash.MakeSeed(), make(map[uint64]uint64)
	}
	topic := maphash.String(d.seed, ev.Topic)
	prev, ok := d.seen[topic]
	if ok && ev.Retained && prev == id {
		return true
	}
	if ok || len(d.seen) < maxSeenTopics {
		d.seen[topic] = id
	}
	return false
}

// handler is the Handler the sessions run for r: once Client.Unregister
// has removed r, an invocation is refused as one of a procedure no longer
// registered (wamp.error.unavailable, as a Session refuses one that comes
// after its Unregister), not run. A restore whose REGISTERED comes after
// the removal holds the registration until the restore sees the removal
// and undoes it; invocations meanwhile must not reach h, since Unregister
// has returned.
func (r *durableReg) handler(ctx context.Context, inv *Invocation) (*Result, error) {
	if r.removed.Load() {
		return nil, &Error{URI: proto.URIUnavailable}
	}
	return r.h(ctx, inv)
}

// handlerOn is the event handler session s runs for d: once
// Client.Unsubscribe has removed d, events are dropped (as durableReg's).
// The Client's event handlers run one at a time, as one session's do,
// also across sessions (acquire).
func (d *durableSub) handlerOn(s *Session) func(*Event) {
	return func(ev *Event) { d.handle(s, ev) }
}

// handle runs d's handler for ev, an event of s (handlerOn), under s's
// dispatcher, whose frame Client.Close finds on the stack (inHandler).
func (d *durableSub) handle(s *Session, ev *Event) {
	if d.removed.Load() {
		return
	}
	held, ok := d.acquire(s)
	if !ok {
		return
	}
	if held {
		defer func() { <-d.events }()
	}
	if !d.removed.Load() && d.h != nil && !d.had(ev) { // removed while waiting; a nil h drops events, as a Session's
		d.h(ev)
	}
}

// handlerNames are the functions that run a Session's event handlers
// and invocation Handlers, as runtime.Frame reports them: those of a
// Client's subscriptions and registrations (durableSub.handle,
// durableReg.handler) run under them, and so do those an application
// subscribes or registers on a Client's session itself (from OnSession),
// which the Client's goroutine waits for as well when it ends the
// session: looking for the Client's two alone, a Close from one of those
// waited for itself for ever.
var handlerNames = []string{
	dispatchName,
	runtime.FuncForPC(reflect.ValueOf((*Session).runHandler).Pointer()).Name(),
}

// inHandler reports whether the calling goroutine runs an event handler
// or invocation Handler of a session (any session's: the stack does not
// tell which, nor whether a Client's).
func inHandler() bool {
	return slices.ContainsFunc(handlerNames, onStack)
}

// acquire takes the Client's event token for a handler that s's
// dispatcher is to run, waiting for a handler another session's
// dispatcher runs (a lost session's, still running when s's events come).
// It waits only while s's reader does not wait for room in s's event
// queue: once the queue is full, the handler runs without the token
// (held false) beside the other. Waiting on would stop s's reader, and
// the other handler may be waiting for an answer on s (a Call of the
// Client's from it, once s is its current session), which that reader
// would never read: both waited for ever. ok is false when s ended, or
// Close was called, while waiting: the event is dropped, as the
// dispatcher drops those still queued then.
func (d *durableSub) acquire(s *Session) (held, ok bool) {
	for {
		select {
		case d.events <- struct{}{}:
			return true, true
		default:
		}
		if s.parked.Load() {
			return false, true
		}
		select {
		case d.events <- struct{}{}:
			return true, true
		case <-s.full: // look at parked again
		case <-s.closing:
			return false, false
		case <-s.done:
			return false, false
		}
	}
}

// Connect dials the first router that answers, joins, and keeps the
// session up until Close. It returns once the first session is joined, or
// when ctx ends first with an error that is ctx's (errors.Is
// context.DeadlineExceeded or context.Canceled) and tells the last
// failure to connect, if there was one. A Config that Dial refuses
// outright for one of the URLs (a bad scheme, no realm) is returned at
// once, without dialing.
func Connect(ctx context.Context, cfg Config, rc ReconnectConfig) (*Client, error) {
	// What every later join uses is copied: the caller's slices and map,
	// kept, could be reused after Connect (a dead address written into
	// the URL list was redialled for ever), and were read racing it.
	urls := slices.Clone(rc.URLs)
	if cfg.URL != "" {
		urls = append([]string{cfg.URL}, urls...)
	}
	cfg.AuthMethods = slices.Clone(cfg.AuthMethods)
	cfg.AuthExtra = maps.Clone(cfg.AuthExtra)
	if len(urls) == 0 {
		return nil, errors.New("client: Connect needs Config.URL or ReconnectConfig.URLs")
	}
	if rc.MinBackoff <= 0 {
		rc.MinBackoff = 100 * time.Millisecond
	}
	if rc.MaxBackoff <= 0 {
		rc.MaxBackoff = 5 * time.Second
	}
	if rc.MaxBackoff < rc.MinBackoff {
		rc.MaxBackoff = rc.MinBackoff
	}
	// A configuration Dial refuses (a bad URL, no realm) would be refused
	// on every attempt: it is Connect's error.
	for _, u := range urls {
		cfg := cfg
		cfg.URL = u
		if _, _, err := cfg.normalize(); err != nil {
			return nil, err
		}
	}
	c := &Client{cfg: cfg, urls: urls, rc: rc, restoreWait: restoreWait, events: make(chan struct{}, 1), up: make(chan struct{}), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cfg.onRevoked = c.revoked
	c.cfg.onSubRevoked = c.subRevoked
	if f := cfg.OnChallenge; f != nil {
		// The Client's goroutine runs it, joining: a callback, from which
		// Close returns at once (the join then fails on the canceled
		// context), as from OnSession and OnDisconnect.
		//
		// One call at a time: a join gives up on a call at its deadline
		// (awaitChallenge), and the next join's call, made while an
		// abandoned one still ran, piled one more goroutine and one more
		// concurrent call of the application's callback per attempt on an
		// OnChallenge that hangs (a token fetched from a provider that
		// does not answer), without bound. A join that comes while one
		// runs fails at once without calling it (and retries with
		// backoff); the first after it returned calls it again.
		c.cfg.OnChallenge = func(method string, extra map[string]any) (sig string, authExtra map[string]any, err error) {
			if !c.challenging.CompareAndSwap(false, true) {
				return "", nil, errChallengeRunning
			}
			defer c.challenging.Store(false)
			ran, p := c.callback(func() { sig, authExtra, err = f(method, extra) })
			if !ran {
				return "", nil, ErrClosed
			}
			if p != nil {
				// The join's own recovery (Session.onChallenge) would
				// see no panic: the callback recovered it. Logged at
				// ERROR with its stack, as OnSession's and
				// OnDisconnect's are: the join's error reaches no
				// caller once Connect has returned (the Client dials
				// again, and logged only "connecting failed" at INFO).
				c.errorLog("client: Config.OnChallenge panicked; the join is aborted and the Client dials again", "panic", p.v, "stack", string(p.stack))
				return "", nil, challengePanic(fmt.Sprintf("Config.OnChallenge panicked: %v", p.v))
			}
			return sig, authExtra, err
		}
	}
	c.errorLog = func(msg string, args ...any) {
		if cfg.Logger != nil {
			cfg.Logger.Error(msg, args...)
		}
	}
	c.log = func(msg string, args ...any) {
		if cfg.Logger != nil {
			cfg.Logger.Info(msg, args...)
		}
	}
	c.warn = func(msg string, args ...any) {
		if cfg.Logger != nil {
			cfg.Logger.Warn(msg, args...)
		}
	}
	first := make(chan struct{})
	go c.run(first)
	select {
	case <-first:
		return c, nil
	case <-ctx.Done():
		// The last error before Close: Close cancels the dial in flight,
		// whose error would be that cancellation.
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		c.Close()
		if last == nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("client: connecting: %w; last error: %w", ctx.Err(), last)
	}
}

// errChallengeRunning fails a Client's join whose CHALLENGE came while a
// call of Config.OnChallenge, from an earlier join that gave up on it,
// still runs.
var errChallengeRunning = errors.New("client: Config.OnChallenge, called for an earlier join, has not returned yet")

// run is the Client's goroutine: it keeps a session up.
func (c *Client) run(first chan<- struct{}) {
	defer close(c.done)
	defer c.lostRunning.Wait()
	backoff := c.rc.MinBackoff
	next := 0
	var refusal refusalLog
	for {
		url := c.urls[next%len(c.urls)]
		next++
		cfg := c.cfg
		cfg.URL = url
		s, err := Dial(c.ctx, cfg)
		if err == nil {
			refusal = refusalLog{}
			start := time.Now()
			c.serve(s, first)
			first = nil
			select {
			case <-c.ctx.Done():
				return
			default:
			}
			// A session that lasted is followed by a redial within a
			// random part of MinBackoff; one that ended soon after its
			// join (a router that drops or kills every new session) backs
			// off like a failed dial, so that the Client never redials in
			// a tight loop. Not at once: the clients of a router that
			// restarts, or of a node that died, lose their sessions in
			// the same instant, and redialled in the same millisecond,
			// each a TLS handshake and a login for the router (or the
			// next node) to take at once.
			if time.Since(start) >= c.rc.MaxBackoff {
				backoff = c.rc.MinBackoff
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(rand.N(c.rc.MinBackoff)):
				}
				continue
			}
		} else {
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			if we, refused := errors.AsType[*Error](err); refused {
				// The router refused the join (ABORT: authentication
				// failed, no such realm): unlike a router restarting, it
				// may not pass, and the application must hear of it.
				// One that says the router stops or is busy is heard of
				// once a streak (see refusalLog).
				if refusal.warn(we) {
					c.warn("client: the router refused the join; retrying", "url", url, "err", err, "retry_in", backoff)
				} else {
					c.log("client: the router refused the join again; retrying", "url", url, "err", err, "retry_in", backoff, "refusals", refusal.n)
				}
			} else if jv, broke := errors.AsType[*joinViolation](err); broke {
				// Not a router restarting: the application must hear
				// of it, once a streak (it repeats at each attempt
				// while the router is as it is).
				if refusal.first("violation\x00" + jv.msg) {
					c.warn("client: the router broke the protocol in the join; retrying", "url", url, "err", err, "retry_in", backoff)
				} else {
					c.log("client: the router broke the protocol in the join again; retrying", "url", url, "err", err, "retry_in", backoff, "refusals", refusal.n)
				}
			} else if dialRefused(err) {
				// What answers at the URL refused the connection (a
				// certificate not trusted, a wrong path's HTTP 404, a
				// RawSocket handshake refused): as a join refused, it
				// may not pass; heard of once a streak.
				if refusal.first("dial\x00" + dialRefusalKey(err)) {
					c.warn("client: the router's address refused the connection; retrying", "url", url, "err", err, "retry_in", backoff)
				} else {
					c.log("client: the router's address refused the connection again; retrying", "url", url, "err", err, "retry_in", backoff, "refusals", refusal.n)
				}
			} else {
				c.log("client: connecting failed", "url", url, "err", err, "retry_in", backoff)
			}
			// Try the next URL at once after a failure on this one, and back
			// off once every URL has failed in this round.
			if next%len(c.urls) != 0 {
				continue
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(c.jittered(backoff)):
		}
		backoff = min(2*backoff, c.rc.MaxBackoff)
	}
}

// refusalLog decides the level of a failed join's line in a Client's
// reconnect loop. A refusal that may pass by itself (transientRefusal:
// the router shutting down or busy, a lockout), a join in which the
// router broke the protocol (joinViolation: it does so at each attempt
// until the router changes), and a dial refused at the transport level
// (dialRefused), is logged at WARN the first time in a row,
// and at INFO while the same repeats until a session is joined (the
// zero value again): a Client reconnecting through a rolling restart, or
// a 5 min lockout, wrote a WARN line at each attempt, and a router
// sending a fifth CHALLENGE was told of at INFO only, as a router
// restarting. Other refusals (authentication failed, no such realm) are
// at WARN each time (16bc4d5). Owned by the Client's goroutine.
type refusalLog struct {
	last string // the failure warned of in this streak, "" for none
	n    int    // the failures of this streak so far
}

// warn reports whether the refusal e is logged at WARN.
func (l *refusalLog) warn(e *Error) bool {
	if !transientRefusal(e) {
		l.n++
		l.last = ""
		return true
	}
	return l.first(e.URI + "\x00" + e.message())
}

// first reports whether the failure key is the first of its streak.
func (l *refusalLog) first(key string) bool {
	l.n++
	if key == l.last {
		return false
	}
	l.last = key
	return true
}

// transientRefusal reports whether the ABORT e of a join may pass by
// itself: wamp.close.system_shutdown (edgewamp answers a HELLO so while
// it stops), edgewamp's "router busy" (its authentication workers' queue
// is full; the URI is wamp.error.authentication_failed, so only the
// message tells), or wamp.error.authentication_denied (edgewamp's
// brute-force limiter: the address or authid locked out, too many
// logins in progress from the address; "try again later").
func transientRefusal(e *Error) bool {
	return e.URI == proto.CloseSystemShutdown || e.URI == proto.URIAuthenticationDenied || strings.HasPrefix(e.message(), "router busy")
}

// jittered returns backoff with ±25% jitter, within [MinBackoff,
// MaxBackoff]: ReconnectConfig says they bound the wait, and the jitter
// took it to 1.25 × MaxBackoff and 0.75 × MinBackoff (a MinBackoff an
// operator set for a router's rate limit broken by a quarter). At a bound
// the jitter is one-sided: drawn evenly over what is left of the range,
// not drawn and clamped, which made half the waits the bound itself (half
// the clients failing together came back together at MinBackoff).
func (c *Client) jittered(backoff time.Duration) time.Duration {
	lo := max(backoff-backoff/4, c.rc.MinBackoff)
	hi := min(backoff+backoff/4, c.rc.MaxBackoff)
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
}

// serve installs s as the current session, restores what was registered
// and subscribed, and waits for it to end.
func (c *Client) serve(s *Session, first chan<- struct{}) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.Close()
		return
	}
	c.s = s
	c.served = append(c.served, s)
	regs := append([]*durableReg(nil), c.regs...)
	subs := append([]*durableSub(nil), c.subs...)
	up := c.up
	c.mu.Unlock()
	// Those waiting in Session get s now, as those who come from now on
	// do: up was closed after the restores below were answered, and a
	// router slow to answer one (up to restoreWait) held every request
	// that had waited through the reconnect, past its deadline, while
	// later ones went out at once.
	close(up)
	// Registrations and subscriptions are restored concurrently (one slow
	// answer does not hold up the others); OnSession waits for the first
	// answer to each, or restoreWait.
	var answered sync.WaitGroup
	for _, r := range regs {
		answered.Add(1)
		go c.restoreReg(s, r, sync.OnceFunc(answered.Done))
	}
	for _, d := range subs {
		answered.Add(1)
		go c.restoreSub(s, d, sync.OnceFunc(answered.Done))
	}
	answered.Wait()
	if first != nil {
		close(first)
	}
	if c.ctx.Err() != nil {
		// Close was called while the restores were out (they end with
		// it): OnSession is not given a session Close is ending.
		s.Close()
		return
	}
	// A session lost while its restores were out (their answers were
	// its end) is not given to OnSession: OnDisconnect follows.
	if c.rc.OnSession != nil && !ended(s) {
		c.callbackLogged("OnSession", func() { c.rc.OnSession(s) })
	}
	select {
	case <-s.Done():
	case <-c.ctx.Done():
		s.Close()
		return
	}
	c.mu.Lock()
	c.forget(s)
	c.lastErr = s.Err()
	// What s held went with it: the records no longer point at it (one
	// the next session does not take back, refused, kept the whole lost
	// session reachable, its buffers of up to 4 MiB each, for good).
	for _, r := range c.regs {
		if r.cur != nil && r.cur.s == s {
			r.cur = nil
		}
	}
	for _, d := range c.subs {
		if d.cur != nil && d.cur.s == s {
			d.cur = nil
		}
	}
	c.mu.Unlock()
	// Its handlers may still run (their contexts are canceled): an
	// invocation Handler cleaning up, an event handler. Close waits for
	// them, as it does for a session it ends; it returned at once while
	// the Client backed off, and they ran on after it, on what the
	// application released once Close had returned.
	c.lostRunning.Add(1)
	go func() {
		s.wg.Wait()
		c.mu.Lock()
		c.served = slices.DeleteFunc(c.served, func(x *Session) bool { return x == s })
		c.mu.Unlock()
		c.lostRunning.Done()
	}()
	c.log("client: session lost; reconnecting", "err", s.Err())
	if c.rc.OnDisconnect != nil {
		err := s.Err()
		c.callbackLogged("OnDisconnect", func() { c.rc.OnDisconnect(err) })
	}
}

// restoreReg registers r on s (restore: retried while the failure may
// pass). It calls answered after the router's first answer.
func (c *Client) restoreReg(s *Session, r *durableReg, answered func()) {
	c.restore(s, true, r.removed.Load, c.registerOn(s, r), answered, "procedure", r.procedure)
}

// registerOn is the try of restoreReg: one REGISTER of r on s.
func (c *Client) registerOn(s *Session, r *durableReg) func(context.Context) error {
	return func(ctx context.Context) error {
		reg, err := s.Register(ctx, r.procedure, r.handler, r.opts)
		if err == nil {
			c.took(reg, r)
		}
		return err
	}
}

// revoked is the sessions' Config.onRevoked: the router took reg away
// (UNREGISTERED with request 0). A mesh does so to the loser of a
// registration conflict found on heal (reason procedure_already_exists,
// or the policy conflict's): the Client registers it again on the same
// session, with backoff while refused, as a restore does, and so goes on
// standing by for the procedure. Before, it stayed unregistered until
// the session ended, where a client that did not announce
// registration_revocation was killed, reconnected and stood by again.
// Other reasons (not authorized any more) are logged at WARN and not
// retried. It runs on the session's reader: the retry has a goroutine.
func (c *Client) revoked(reg *Registration, reason string) {
	c.mu.Lock()
	var r *durableReg
	for _, x := range c.regs {
		if x.cur == reg && !x.removed.Load() {
			r = x
			break
		}
	}
	c.mu.Unlock()
	if r != nil {
		c.regRevoked(reg.s, r, reason)
	}
}

// regRevoked acts on the revocation of r's registration on s: revoked's,
// and the Client's when the revocation came before it recorded the
// registration (took, Register), which revoked then did not find.
func (c *Client) regRevoked(s *Session, r *durableReg, reason string) {
	if c.ctx.Err() != nil {
		return
	}
	err := &Error{URI: reason}
	if !transient(err, true) || reason == proto.URIUnavailable {
		if !ended(s) {
			c.warn("client: a registration was revoked by the router; it is not in place on this session", "procedure", r.procedure, "reason", reason)
		}
		return
	}
	go c.retry(s, true, r.removed.Load, c.registerOn(s, r), err, []any{"procedure", r.procedure})
}

// subRevoked is the sessions' Config.onSubRevoked: the router took subs
// (one subscription id) away, a reload that no longer lets the role
// subscribe (not_authorized) or the meta API's remove_subscriber. Those
// the Client made no longer get events on this session (the next one
// subscribes them again): the application must hear of it, at WARN, as
// of a revoked registration. Only the session's INFO line told of it.
// It runs on the session's reader.
func (c *Client) subRevoked(subs []*Subscription, reason string) {
	c.mu.Lock()
	var d *durableSub
	for _, x := range c.subs {
		if x.cur != nil && x.cur.s == subs[0].s && x.cur.id == subs[0].id && !x.removed.Load() {
			d = x
			break
		}
	}
	c.mu.Unlock()
	if d != nil {
		c.subWarn(d, subs[0].match, reason)
	}
}

// subWarn tells of the revocation of d's subscription (subRevoked's, and
// the Client's when it came before the subscription was recorded, as
// regRevoked).
func (c *Client) subWarn(d *durableSub, match, reason string) {
	if c.ctx.Err() != nil {
		return
	}
	c.warn("client: a subscription was revoked by the router; it is not in place on this session", "topic", d.topic, "match", match, "reason", reason)
}

// recordHook, when set, runs in Client.Register and Subscribe between the
// router's answer and the Client's record of it. For the tests.
var recordHook atomic.Pointer[func()]

// restoreWait is how long a restore waits for the router's answer before
// it lets OnSession run (the answer is still waited for). A variable for
// the tests.
var restoreWait = 10 * time.Second

// restore runs try (one REGISTER or SUBSCRIBE) on s, and again with
// backoff, on a goroutine of its own, while the failure may pass: the
// router was busy (wamp.error.unavailable) or, for a registration, still
// holds the lost session's (the mesh has not yet noticed that its node is
// gone). It stops when s ends, the Client closes, or the registration or
// subscription was removed (gone, read under mu). answered is called after
// the router's first answer, or after c.restoreWait without one.
//
// A try the router is slow to answer is waited for, never given up and
// sent again: the late answer to the first would race the second (an
// abandoned SUBSCRIBE's late SUBSCRIBED is undone with UNSUBSCRIBE, which
// takes down the subscription the router gives the second with the same
// id, unless the second is still waiting for its answer; an abandoned
// REGISTER's makes the second refused).
func (c *Client) restore(s *Session, reg bool, gone func() bool, try func(context.Context) error, answered func(), what ...any) {
	first := make(chan error, 1)
	go func() { first <- try(c.ctx) }()
	t := time.NewTimer(c.restoreWait)
	defer t.Stop()
	select {
	case err := <-first:
		answered()
		if err != nil {
			go c.retry(s, reg, gone, try, err, what)
		}
	case <-t.C:
		answered()
		go func() {
			if err := <-first; err != nil {
				c.retry(s, reg, gone, try, err, what)
			}
		}()
	}
}

// retry is restore's loop after a first try failed with err.
func (c *Client) retry(s *Session, reg bool, gone func() bool, try func(context.Context) error, err error, what []any) {
	kind := "subscription"
	if reg {
		kind = "registration"
	}
	wait := c.rc.MinBackoff
	warned := false
	for retried := false; err != nil && transient(err, reg); retried = true {
		// With jitter, as a redial: restores refused together (a busy
		// router's, or a mesh's revoking the losers of a conflict on
		// heal, a fleet's at once) came back together at every retry,
		// each wave a burst for the router that refused them.
		in := c.jittered(wait)
		if wait == c.rc.MaxBackoff && retried && !warned {
			// Refused through the whole backoff (about 6 s by default;
			// a mesh frees a dead node's registration within
			// peer_timeout, 2 s): another session holds the procedure (a
			// standby that took over while this Client reconnected), or
			// the router stays busy. The application hears of it once:
			// it was INFO at each retry, for ever. Not at the first
			// refusal, also when MinBackoff = MaxBackoff (the wait is
			// at MaxBackoff from the start): a refusal the next retry
			// passes (a mesh's, for peer_timeout) was a WARN then.
			warned = true
			c.warn("client: restoring a "+kind+" is still refused; it is not in place on this session until a retry passes", append(what, "err", err, "retry_in", in)...)
		} else {
			c.log("client: restoring a "+kind+" failed; retrying", append(what, "err", err, "retry_in", in)...)
		}
		select {
		case <-s.Done():
			return
		case <-c.ctx.Done():
			return
		case <-time.After(in):
		}
		wait = min(2*wait, c.rc.MaxBackoff)
		c.mu.Lock()
		removed := gone()
		c.mu.Unlock()
		if removed {
			return
		}
		err = try(c.ctx)
	}
	if err == nil && warned && !ended(s) && c.ctx.Err() == nil {
		// Told of at WARN as not in place: the application hears, at the
		// same level, that it is again (it heard nothing of it). Not when
		// it was removed while the try was out (Unregister, Unsubscribe):
		// the try undid it, and the line told of a procedure the
		// application had just taken off as provided.
		c.mu.Lock()
		removed := gone()
		c.mu.Unlock()
		if removed {
			return
		}
		c.warn("client: restoring a "+kind+" passed; it is in place on this session again", what...)
	}
	if err != nil && !ended(s) && c.ctx.Err() == nil {
		// For good on this session: what the application registered or
		// subscribed is no longer there (a WARN, where the transient
		// failures above are INFO).
		c.warn("client: restoring a "+kind+" failed; it is not in place on this session", append(what, "err", err)...)
	}
}

// transient reports whether a failed REGISTER (reg) or SUBSCRIBE is worth
// another try on the same session.
//
// wamp.error.procedure_exists_with_different_invocation_policy is, as
// procedure_already_exists is: the lost session's own registration never
// causes it, but other sessions holding the procedure with another policy
// may be leaving (a rolling deploy whose old callees used roundrobin and
// new ones random), and the gateway's HTTP callees stand by on it for that
// reason; before the router had that URI this case was
// procedure_already_exists and retried, and a restore that gave up left
// the procedure unprovided by this client until its next reconnection.
func transient(err error, reg bool) bool {
	var we *Error
	if !errors.As(err, &we) {
		return false
	}
	return we.URI == proto.URIUnavailable || reg && (we.URI == proto.URIProcedureAlreadyExists || we.URI == proto.URIProcedureExistsInvocationPolicyConflict)
}

// forget clears s as the current session, if it still is, so that
// Session waits for the next one. Call with mu held.
func (c *Client) forget(s *Session) {
	if c.s == s {
		c.s = nil
		c.up = make(chan struct{})
	}
}

// restoreSub subscribes d on s; a failure that may pass is retried in the
// background (restore). It calls answered after the router's first answer.
func (c *Client) restoreSub(s *Session, d *durableSub, answered func()) {
	c.restore(s, false, d.removed.Load, func(ctx context.Context) error {
		sub, err := s.Subscribe(ctx, d.topic, d.handlerOn(s), d.opts)
		if err != nil {
			return err
		}
		c.mu.Lock()
		removed := d.removed.Load()
		why := sub.revocation.Load() // see took, as the check of s below
		if !removed && why == nil && !ended(s) {
			d.cur = sub
		}
		c.mu.Unlock()
		if removed { // Unsubscribe ran while this SUBSCRIBE was out
			s.Unsubscribe(ctx, sub)
		} else if why != nil {
			c.subWarn(d, sub.match, *why)
		}
		return nil
	}, answered, "topic", d.topic)
}

// took records reg as r's registration on its session, or undoes it when
// Unregister ran while the REGISTER was out. A revocation the reader
// handled before (revoked found no record of reg) is acted on here: reg
// is then not recorded, so that a revoked running after this does not
// act on it again (it finds reg recorded only when the revocation came
// after this check).
func (c *Client) took(reg *Registration, r *durableReg) {
	c.mu.Lock()
	removed := r.removed.Load()
	why := reg.revocation.Load()
	// Not once its session is lost: serve has cleared, or will clear
	// (under mu, after s.Err is set), the records of it. Recorded after
	// that, it kept the lost session reachable (the next session
	// refusing the registration), or took the place of the next
	// session's, which Unregister then left on it.
	if !removed && why == nil && !ended(reg.s) {
		r.cur = reg
	}
	c.mu.Unlock()
	if removed {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		reg.s.Unregister(ctx, reg)
		cancel()
	} else if why != nil {
		c.regRevoked(reg.s, r, *why)
	}
}

// Session returns the current session, waiting (bounded by ctx) while the
// Client reconnects: until the next session is joined, not until its
// restores are answered. Close ends the wait (ErrClosed). Called from the
// Client's own OnSession, OnDisconnect or Config.OnChallenge callback
// while there is no session, it returns ErrInCallback at once: the
// callback holds up the reconnection. So do Call, Publish, Register and
// Subscribe, which wait for a session through it.
func (c *Client) Session(ctx context.Context) (*Session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		s := c.s
		if s != nil && doneClosed(s) {
			// Lost, and serve has not noticed yet (it may be running a
			// slow OnSession): the up channel is the closed one of s.
			c.forget(s)
		}
		s, up := c.s, c.up
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		if c.inCallback() {
			// The callback holds up the Client's goroutine, which would
			// dial the next session (and OnChallenge's join): waiting,
			// the request held the Client for ever, a Close with it.
			return nil, ErrInCallback
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			// Close was called. Not only c.done: a callback waiting for
			// this request holds the Client's goroutine, and so c.done,
			// and Close waited for it for ever.
			return nil, ErrClosed
		}
	}
}

// Call calls procedure on the current session (see Session.Call). A call
// in flight when the session is lost fails with the session's error,
// wrapped with ErrSessionLost; it is not retried.
func (c *Client) Call(ctx context.Context, procedure string, args []any, kwargs map[string]any, opts *CallOptions) (*Result, error) {
	s, err := c.Session(ctx)
	if err != nil {
		return nil, err
	}
	return s.Call(ctx, procedure, args, kwargs, opts)
}

// Publish publishes on the current session (see Session.Publish).
func (c *Client) Publish(ctx context.Context, topic string, args []any, kwargs map[string]any, opts *PublishOptions) error {
	s, err := c.Session(ctx)
	if err != nil {
		return err
	}
	return s.Publish(ctx, topic, args, kwargs, opts)
}

// Register registers procedure on the current session and on every later
// one. It returns the router's answer for the current session.
//
// A Register that returns an error is not kept: the sessions to come do
// not register procedure. So is one refused by the router, one whose ctx
// ends while it waits for a session, and one made from the Client's own
// OnSession, OnDisconnect or Config.OnChallenge callback while the Client
// has no session, which fails at once with ErrInCallback: make it again
// from a goroutine the callback does not wait for, or from OnSession.
//
// A Register whose session is lost before the router answered is made
// again on the next session (waiting for it, bounded by ctx), as one made
// while reconnecting waits for it: whether the loss came just before or
// just after the call does not decide whether the procedure is the
// Client's. (The lost session's registration, if the router made it,
// went with that session.)
//
// opts is copied, with its Options map (not the values in it): every
// session is given the options as they were at the call, whatever the
// caller does with opts afterwards.
func (c *Client) Register(ctx context.Context, procedure string, h Handler, opts *RegisterOptions) error {
	if h == nil {
		return ErrNilHandler // not kept: restored, it would be refused on every session
	}
	opts = opts.clone() // kept for the sessions to come: as given now
	r := &durableReg{procedure: procedure, h: h, opts: opts}
	var s *Session
	var reg *Registration
	for {
		var err error
		if s, err = c.Session(ctx); err != nil {
			return err
		}
		if reg, err = s.Register(ctx, procedure, r.handler, opts); err == nil {
			break
		}
		if !lostWith(s, err) {
			return err
		}
		c.lost(s)
	}
	if h := recordHook.Load(); h != nil {
		(*h)()
	}
	c.mu.Lock()
	why := reg.revocation.Load() // see took
	if why == nil && !ended(s) { // see took
		r.cur = reg
	}
	c.regs = append(c.regs, r)
	cur := c.s
	c.mu.Unlock()
	if why != nil {
		c.regRevoked(s, r, *why)
	}
	if cur != nil && cur != s {
		// s was lost meanwhile, and the next session took its copy of the
		// list before r was in it.
		go c.restoreReg(cur, r, func() {})
	}
	return nil
}

// Subscribe subscribes to topic on the current session and on every later
// one. It returns the router's answer for the session current when it was
// called; a session that took its place meanwhile is subscribed in the
// background, as Register does.
//
// A Subscribe whose session is lost before the router answered is made
// again on the next session, as Register is, and opts is copied as
// Register's is; one that returns an error is not kept, as Register's
// (ErrInCallback from a callback included).
func (c *Client) Subscribe(ctx context.Context, topic string, h func(*Event), opts *SubscribeOptions) error {
	opts = opts.clone() // as in Register
	d := &durableSub{events: c.events, topic: topic, h: h, opts: opts,
		retained: opts.getRetained(), exact: matchOf(opts) == proto.MatchExact.String()}
	var s *Session
	var sub *Subscription
	for {
		var err error
		if s, err = c.Session(ctx); err != nil {
			return err
		}
		if sub, err = s.Subscribe(ctx, topic, d.handlerOn(s), opts); err == nil {
			break
		}
		if !lostWith(s, err) {
			return err
		}
		c.lost(s)
	}
	if h := recordHook.Load(); h != nil {
		(*h)()
	}
	c.mu.Lock()
	why := sub.revocation.Load() // see took
	if why == nil && !ended(s) { // see took
		d.cur = sub
	}
	c.subs = append(c.subs, d)
	cur := c.s
	c.mu.Unlock()
	if why != nil {
		c.subWarn(d, sub.match, *why)
	}
	if cur != nil && cur != s { // as in Register: in the background, not bounded by ctx
		go c.restoreSub(cur, d, func() {})
	}
	return nil
}

// Unregister removes every registration of procedure made through
// Register: from the current session (waiting for UNREGISTERED) and from
// the sessions to come. It returns ErrNotRegistered when there is none.
// From the moment it is called the handler is not started again: an
// invocation that still comes (one a restore under way gets, until the
// restore undoes its registration) is refused wamp.error.unavailable.
// When ctx has already ended nothing is done and ctx.Err() is returned,
// as Session.Unregister does; otherwise every UNREGISTER (one per
// registration of procedure, with each match policy) is sent before any
// answer is waited for, and ctx bounds only the waits: a ctx that ends
// while one is waited for leaves none of them on the session.
func (c *Client) Unregister(ctx context.Context, procedure string) error {
	// Checked before anything is taken off the list: the session's
	// Unregister would refuse the ended context, and the registration,
	// no longer the Client's, could not be removed any more.
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	kept, undos := removeDurable(c.regs, func(r *durableReg) (bool, undo) {
		if r.procedure != procedure {
			return false, nil
		}
		r.removed.Store(true)
		if reg := r.cur; reg != nil {
			return true, func() (func(context.Context) error, error) {
				wait, err := reg.s.startUnregister(reg)
				return undoWait(reg.s, wait, err, ErrNotRegistered)
			}
		}
		return true, nil
	})
	found := len(kept) < len(c.regs)
	c.regs = kept
	c.mu.Unlock()
	if !found {
		return ErrNotRegistered
	}
	return runUndo(ctx, undos)
}

// Unsubscribe removes every subscription to topic made through Subscribe,
// as Unregister does for registrations (an event that still comes is
// dropped; every UNSUBSCRIBE is sent, ctx bounding the waits for the
// answers). It returns ErrNotSubscribed when there is none, and
// ctx.Err(), doing nothing, when ctx has already ended.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil { // as in Unregister
		return err
	}
	c.mu.Lock()
	kept, undos := removeDurable(c.subs, func(d *durableSub) (bool, undo) {
		if d.topic != topic {
			return false, nil
		}
		d.removed.Store(true)
		if sub := d.cur; sub != nil {
			return true, func() (func(context.Context) error, error) {
				wait, err := sub.s.startUnsubscribe(sub)
				return undoWait(sub.s, wait, err, ErrNotSubscribed)
			}
		}
		return true, nil
	})
	found := len(kept) < len(c.subs)
	c.subs = kept
	c.mu.Unlock()
	if !found {
		return ErrNotSubscribed
	}
	return runUndo(ctx, undos)
}

// clone returns a copy of o (nil for nil), its Options map copied too
// (not the values in it): what a Client keeps to register again.
func (o *RegisterOptions) clone() *RegisterOptions {
	if o == nil {
		return nil
	}
	c := *o
	c.Options = maps.Clone(o.Options)
	return &c
}

// clone returns a copy of o, as RegisterOptions.clone does.
func (o *SubscribeOptions) clone() *SubscribeOptions {
	if o == nil {
		return nil
	}
	c := *o
	c.Options = maps.Clone(o.Options)
	return &c
}

// getRetained reports whether the subscription asks for retained events
// (GetRetained, or get_retained true in Options, which overrides it).
func (o *SubscribeOptions) getRetained() bool {
	if o == nil {
		return false
	}
	if v, ok := o.Options[proto.KeyGetRetained.Name()].(bool); ok {
		return v
	}
	return o.GetRetained
}

// undo starts taking one registration or subscription off its session
// (sends UNREGISTER or UNSUBSCRIBE) and returns what waits for the
// router's answer.
type undo func() (wait func(context.Context) error, err error)

// removeDurable returns list without the items take removes, and what
// undoes them on the current session. Call with Client.mu held.
func removeDurable[T any](list []T, take func(T) (bool, undo)) ([]T, []undo) {
	var kept []T
	var undos []undo
	for _, x := range list {
		gone, u := take(x)
		if !gone {
			kept = append(kept, x)
		} else if u != nil {
			undos = append(undos, u)
		}
	}
	return kept, undos
}

// runUndo starts every undo, then waits for each within ctx, and returns
// the first error. Every one decided is sent, whatever ctx says: waiting
// for each before sending the next left those after one whose ctx ended
// (the Client no longer holding them, their handlers refusing) on the
// session until its end, with nothing to take them off any more.
func runUndo(ctx context.Context, undos []undo) error {
	var first error
	waits := make([]func(context.Context) error, 0, len(undos))
	for _, u := range undos {
		wait, err := u()
		if err != nil {
			first = cmp.Or(first, err)
		} else if wait != nil {
			waits = append(waits, wait)
		}
	}
	for _, wait := range waits {
		if err := wait(ctx); err != nil {
			first = cmp.Or(first, err)
		}
	}
	return first
}

// undoWait is an undo's result on s: wait and err as startUnregister or
// startUnsubscribe returned them, errors that mean it is gone anyway
// (ignoreGone) dropped (nothing to wait for then).
func undoWait(s *Session, wait func(context.Context) error, err, notThere error) (func(context.Context) error, error) {
	if err != nil {
		return nil, ignoreGone(s, err, notThere)
	}
	return func(ctx context.Context) error { return ignoreGone(s, wait(ctx), notThere) }, nil
}

// ignoreGone drops err when what it undid went with its session, or was
// already gone (notThere).
func ignoreGone(s *Session, err, notThere error) error {
	if err == nil || ended(s) || err == notThere {
		return nil
	}
	return err
}

// lostWith reports whether err, a request's failure on s, is s's end
// (the session was lost before the router answered), not the router's
// answer nor the caller's context's.
func lostWith(s *Session, err error) bool {
	end := s.Err()
	return end != nil && errors.Is(err, end) && end != ErrClosed
}

// lost clears s, which a request found lost, as the current session, so
// that Session waits for the next one even before s's Done is closed.
func (c *Client) lost(s *Session) {
	c.mu.Lock()
	c.forget(s)
	c.mu.Unlock()
}

// doneClosed reports whether s's Done is closed: ended, without the lock
// (Session's check on every Client.Call and Publish).
func doneClosed(s *Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// ended reports whether s's session is over (what it held went with it).
// It reads Err, not Done: shutdown answers the pending requests with the
// end before it closes Done, and a waiter woken by that answer found the
// session alive (a Register lost with its session then failed instead of
// being made on the next one).
func ended(s *Session) bool {
	return s.Err() != nil
}

// Close ends the current session (GOODBYE) and stops reconnecting. It
// waits for the Client's goroutine, which ends the session and waits for
// the handlers of every session, lost ones included, to return, except when
// called from OnSession, OnDisconnect or Config.OnChallenge, which run on
// that goroutine (OnChallenge on one that it waits for): it then returns at once, and the goroutine ends the
// session (or the join) and stops once the callback returns. Called from a
// handler of a Client's subscription or registration, a lost session's
// too, or of one made on a Client's session itself (from OnSession), it
// does not wait for the Client's goroutine either, which waits for that
// handler: from an event handler it returns at once; from an invocation
// Handler it waits for the end of the current session (its GOODBYE
// answered, or ReplyTimeout), which does not wait for that Handler. The
// Client stops once the handler returns. From a handler of another
// session (another Client's, or a Session's of the application's) it
// waits, as from outside any handler. Do not call
// it from a goroutine that such a handler or a callback waits for: ending
// the session waits for the handlers, and Close for the Client's goroutine.
func (c *Client) Close() error {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	if first {
		c.cancel()
	}
	if c.inCallback() {
		// Called from this Client's callback (from another Client's,
		// it waits).
		return nil
	}
	if inHandler() {
		// Called from a handler of a session, maybe this Client's: the
		// Client's goroutine ends the session and stops once that handler
		// returns, since it waits for it (a lost session's, as for the
		// current one's). Waiting for it here, Close waited for itself,
		// and the Client's goroutine for it, for ever.
		switch kind, hs := c.whoseHandler(); kind {
		case ownEvent:
			// On a dispatcher of the Client's: the session's reader may
			// wait for it (a full event queue), and the GOODBYE's answer
			// with it.
			return nil
		case ownInvocation, unknownHandler:
			// An invocation Handler of the Client's (or a caller whose
			// stack trace did not tell): the current session's end does
			// not wait for it (handlerCloses), and Close waits for that,
			// as a Close(); os.Exit(0) there cut the GOODBYE.
			c.mu.Lock()
			cur := c.s
			c.mu.Unlock()
			if cur == nil {
				return nil
			}
			if cur == hs {
				defer cur.handlerCloses()()
			}
			<-cur.Done()
			return nil
		}
		// Another session's handler: Close waits as from outside any
		// (it returned at once, the Client's session still open).
	}
	<-c.done
	return nil
}

// handlerKind is whose handler a goroutine runs (whoseHandler).
type handlerKind uint8

const (
	otherHandler   handlerKind = iota // another session's
	unknownHandler                    // the stack trace did not tell
	ownEvent                          // an event handler of the Client's sessions
	ownInvocation                     // an invocation Handler of the Client's sessions
)

// whoseHandler tells whose handler the calling goroutine, which runs one
// (inHandler), runs, and for one of c's sessions' (the current one's or a
// lost one's) which session s: an event handler runs on s's dispatcher,
// an invocation Handler on a goroutine s's reader started. It takes the
// caller's stack trace: called by Close from a handler only, so that
// neither an invocation nor an event pays for it.
func (c *Client) whoseHandler() (kind handlerKind, s *Session) {
	g, parent := goids()
	if g == 0 || parent == 0 {
		return unknownHandler, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.served {
		if s.dispatcher.Load() == g {
			return ownEvent, s
		}
		if s.reader.Load() == parent {
			return ownInvocation, s
		}
	}
	return otherHandler, nil
}

// callback runs f, a call of OnSession, OnDisconnect or OnChallenge, on the Client's
// goroutine: Close, called from f, finds its goroutine among those
// running the Client's callbacks (inCallback) and does not wait for the
// goroutine it runs on.
// Once Close has been called f is not run, and callback returns false: a
// Close from another goroutine has not returned (it waits for this one),
// and one from a callback has, so that a callback started after it (the
// session lost as OnSession called Close: OnDisconnect) would run after
// Close returned.
//
// A panic in f is recovered and returned (p): it went up the Client's
// goroutine, which nothing recovers, and a bug in an application's
// OnSession or OnDisconnect (a logging callback) took the whole program
// down; the Client now goes on as if f had returned.
func (c *Client) callback(f func()) (ran bool, p *callbackPanic) {
	if c.ctx.Err() != nil {
		return false, nil
	}
	id := goid()
	c.cbMu.Lock()
	c.cbGoroutines = append(c.cbGoroutines, id)
	c.cbMu.Unlock()
	c.callbacks.Add(1)
	defer func() {
		c.callbacks.Add(-1)
		c.cbMu.Lock()
		if i := slices.Index(c.cbGoroutines, id); i >= 0 {
			c.cbGoroutines = slices.Delete(c.cbGoroutines, i, i+1)
		}
		c.cbMu.Unlock()
	}()
	defer func() {
		if v := recover(); v != nil {
			ran, p = true, &callbackPanic{v, debug.Stack()}
		}
	}()
	f()
	return true, nil
}

// callbackPanic is a callback's recovered panic: its value and where.
type callbackPanic struct {
	v     any
	stack []byte
}

// callbackLogged runs f, the callback name, as callback does, and logs
// its panic at ERROR.
func (c *Client) callbackLogged(name string, f func()) {
	if _, p := c.callback(f); p != nil {
		c.errorLog("client: ReconnectConfig."+name+" panicked; the Client goes on", "panic", p.v, "stack", string(p.stack))
	}
}

// inCallback reports whether the calling goroutine runs one of c's
// OnSession, OnDisconnect or OnChallenge calls (callback). It looked for
// callback's frame in the stack, which every Client's callbacks have: a
// request or Close of this Client from another Client's callback, while
// one of this Client's ran, was taken for this Client's own (ErrInCallback
// at once; Close not waiting).
func (c *Client) inCallback() bool {
	if c.callbacks.Load() == 0 {
		return false
	}
	id := goid()
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	return slices.Contains(c.cbGoroutines, id)
}

// goid returns the calling goroutine's id, read from the first line of
// its stack trace ("goroutine 18 [running]:"): Go names the calling
// goroutine no other way.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, _ = bytes.CutPrefix(b, []byte("goroutine "))
	return leadingID(b)
}

// goids returns the calling goroutine's id (goid) and the id of the
// goroutine that started it, read from the last line of its stack trace
// ("created by f in goroutine 18"), 0 for one not known. The whole trace
// is taken (at most 100 frames, a few KiB): for a rare call only.
func goids() (g, parent uint64) {
	buf := make([]byte, 4<<10)
	for {
		n := runtime.Stack(buf, false)
		if n < len(buf) || len(buf) >= 1<<20 {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	if b, ok := bytes.CutPrefix(buf, []byte("goroutine ")); ok {
		g = leadingID(b)
	}
	if i := bytes.LastIndex(buf, []byte("\ncreated by ")); i >= 0 {
		line, _, _ := bytes.Cut(buf[i+1:], []byte("\n"))
		if j := bytes.LastIndex(line, []byte(" in goroutine ")); j >= 0 {
			parent = leadingID(line[j+len(" in goroutine "):])
		}
	}
	return g, parent
}

// leadingID returns the number b starts with (a goroutine id).
func leadingID(b []byte) uint64 {
	var id uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}

// onStack reports whether the function named fn (as runtime.Frame
// reports it) is in the calling goroutine's stack.
func onStack(fn string) bool {
	pc := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pc)
		if n < len(pc) {
			pc = pc[:n]
			break
		}
		pc = make([]uintptr, 2*len(pc))
	}
	frames := runtime.CallersFrames(pc)
	for {
		f, more := frames.Next()
		if f.Function == fn {
			return true
		}
		if !more {
			return false
		}
	}
}
