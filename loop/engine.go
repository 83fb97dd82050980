package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/loop/uring"
	"github.com/edgewamp/edgewamp/route"
)

// Engine serves WAMP transports on gnet event loops, one loop per router
// shard. Create it with New, then Start; Shutdown stops it.
type Engine struct {
	opts   Options
	router *route.Router
	log    *slog.Logger
	http   httpOptions
	lane   LaneConfig // HTTPLane listeners' (lane.go); static after New

	lns []*listenerState // static after New
	acc acceptState      // the listeners and their acceptors (accept.go)

	rings    []*uring.Ring // one per loop (shard), io_uring send path only; static after Start, closed when the loops stop
	sendPath string        // SendPathIOUring or SendPathWrite; static after Start
	eng      gnet.Engine   // set in OnBoot
	stopErr  error         // why gnet.Rotate returned; read after stopped is closed
	booted   chan error
	stopped  chan struct{}
	launched atomic.Bool // Start launched gnet's loops (stopped closes when they end)
	shutOnce sync.Once
	shutDone chan struct{} // closed when the first Shutdown returns
	draining atomic.Bool
	clock    atomic.Int64 // coarse ns on the epoch's scale, updated on every tick (now)
	// epoch is Options.Now's reading at New, and epochNs its unix ns: the
	// clock is epochNs plus the time since epoch (static after New).
	epoch   time.Time
	epochNs int64
	// lingering counts the connections that linger (flush.go: linger),
	// which Shutdown waits for.
	lingering atomic.Int64
	// lingerResets counts the lingering connections reset because their
	// peer stopped taking the output (Stats.LingerResets).
	lingerResets atomic.Uint64

	parkWarned atomic.Bool // parkFailed logged (park.go)

	mu       sync.Mutex
	loops    map[gnet.EventLoop]*loopState
	nloops   int
	lastScan time.Time // owned by the tick goroutine
	started  time.Time // static: origin of monotime
	ticked   bool      // owned by the tick goroutine: the first tick reported the loops running

	warm     atomic.Int64 // warm-up connections open on the loops (warmup.go)
	tlsPool  tlsPool      // TLS handshakes in progress (tlshs.go)
	tlsConns atomic.Int64 // open TLS connections

	fds       atomic.Int64 // descriptors held by connections (fdlimit.go)
	fdCap     int64        // static after New
	fdRefused atomic.Uint64

	inbound        atomic.Int64 // bytes of partial inbound messages (budget.go)
	inboundRefused atomic.Uint64
	staleHeld      atomic.Int64  // bytes held by stale connections (budget.go: shed)
	shedding       atomic.Bool   // a shed round runs on the loops
	shedLeft       atomic.Int32  // loops of the round that have not shed yet
	shedNeed       atomic.Int64  // bytes the round has still to shed
	shedExcess     atomic.Int64  // the largest excess the round was called with, less its shed holders given back
	shedRound      atomic.Uint64 // counts the shed rounds (conn.shedIn)
	outbound       atomic.Int64  // bytes of output queued in gnet, and pending (budget.go)
	outRefused     atomic.Uint64 // large messages refused for the output budget
	ringEnters     atomic.Uint64 // io_uring_enter calls of the send rings (sendring.go)
	ringSends      atomic.Uint64 // sends submitted through them
	ringPartial    atomic.Uint64 // sends the socket did not take whole: the rest went to gnet
	ringFailures   atomic.Uint64 // loops whose ring failed while they ran: they write with write(2) since
	pongsCoalesced atomic.Uint64 // pings not answered: a later ping's pong answered them (pong.go)
	closeLogs      logLimiter
	srcLogs        srcLogLimiter // refusals for max_tls_handshakes_per_address (close.go)
	perAddr        addrConns     // open connections per client source (peraddr.go)
	addrLogs       srcLogLimiter // refusals for max_connections_per_address (peraddr.go)
	proxyLogs      proxyLog      // trusted proxies' upgrades that name no client (proxy.go)
	// proxyUnforwarded counts the upgrades from a trusted proxy that named
	// no client address (Stats.ProxyUnforwarded).
	proxyUnforwarded atomic.Uint64
	opens            atomic.Uint64 // connections opened on a loop (memburst.go)
	memReleases      atomic.Uint64 // free heap returned after a burst of connections (memburst.go)
	burst            memBurst      // owned by the tick goroutine
}

// listenerState is one configured listener.
type listenerState struct {
	cfg   Listener
	addr  net.Addr    // bound address, after Start
	tls   *tls.Config // TLS listeners: the configuration served (serverConfig); static
	conns atomic.Int64
	// closes counts the listener's connections closed, by reason
	// (close.go); per listener, so that Stats can tell the HTTP lane's
	// from the WAMP listeners'.
	closes [NumCloseReasons]atomic.Uint64
	// enrollFailed is set when gnet could not take a connection the
	// acceptor accepted (enrollFailed, accept.go), and cleared by the
	// acceptor as it pauses for it.
	enrollFailed atomic.Bool
	// enrolled is set when one of the listener's connections reaches its
	// loop, and cleared when the acceptor pauses: the pause doubles until
	// a connection gets through again.
	enrolled atomic.Bool
}

// New validates opts and returns an Engine for r. The engine runs one event
// loop per shard of r.
func New(r *route.Router, opts Options) (*Engine, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		opts:     opts,
		router:   r,
		log:      opts.Logger,
		booted:   make(chan error, 1),
		stopped:  make(chan struct{}),
		shutDone: make(chan struct{}),
		loops:    map[gnet.EventLoop]*loopState{},
	}
	e.lane = opts.Lane
	e.lane.setDefaults()
	e.acc.stop = make(chan struct{})
	e.http = httpOptions{wsPath: opts.WSPath, healthPath: opts.HealthPath, maxHeader: opts.MaxHandshake, checkOrigin: opts.CheckOrigin, scanned: opts.headerScanned}
	e.tlsPool.max = opts.MaxTLSHandshakes
	e.tlsPool.perSrc = max(opts.MaxTLSHandshakesPerAddress, 0) // negative: no bound
	e.perAddr.max = max(opts.MaxConnsPerAddress, 0)            // negative: no bound
	e.tlsPool.cpu = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	for _, l := range opts.Listeners {
		ln := &listenerState{cfg: l}
		e.lns = append(e.lns, ln)
		if l.TLS != nil {
			ln.tls = serverConfig(l.TLS, l.Transport)
		}
		if _, err := net.ResolveTCPAddr("tcp", l.Addr); err != nil {
			return nil, fmt.Errorf("loop: listener %s: %w", l.Addr, err)
		}
	}
	soft, hard, err := fileLimit()
	if err != nil {
		return nil, fmt.Errorf("loop: open-file limit: %w", err)
	}
	// Saturated: two listeners at 2^63−1 wrapped the sum to −2, and the
	// warning below was not given.
	explicit := int64(0)
	for _, l := range opts.Listeners {
		explicit += min(int64(max(l.MaxConns, 0)), math.MaxInt64-explicit)
	}
	e.fdCap = fdBudget(soft, len(opts.Listeners))
	e.acc.window = make(chan struct{}, enrollWindow(soft))
	// Listeners without a cap of their own get the budget less a band in
	// which connections are still refused politely (503, RawSocket error)
	// before the budget closes them unanswered. Several such listeners
	// share the budget.
	auto := e.fdCap - min(e.fdCap/16, 256)
	for _, ln := range e.lns {
		if ln.cfg.MaxConns == 0 {
			ln.cfg.MaxConns = int(auto)
		}
	}
	e.log.Info("open-file limit", "soft", soft, "hard", hard, "listen_backlog", listenBacklog, "connection_capacity", e.fdCap)
	if explicit > e.fdCap {
		e.log.Warn("listeners' max_connections add up to more than the open-file limit allows; "+
			"connections past it are closed unanswered (raise LimitNOFILE in the systemd unit, or ulimit -n)",
			"max_connections", explicit, "connection_capacity", e.fdCap)
	}
	e.epoch = opts.Now()
	e.epochNs = e.epoch.UnixNano()
	e.clock.Store(e.epochNs)
	e.started = time.Now()
	return e, nil
}

// Start binds the listeners and starts the event loops, then accepting.
// It returns once they run, or with the error that stopped them.
func (e *Engine) Start() error {
	if err := e.listen(); err != nil {
		return err
	}
	if err := e.startRings(); err != nil {
		e.closeListeners()
		return err
	}
	h := &handler{e: e}
	e.launched.Store(true)
	go func() {
		defer close(e.stopped)
		defer e.closeRings()     // after the loops: no flush runs any more
		defer e.closeParkers()   // after the loops: none parks any more
		defer e.closeListeners() // stopped unexpectedly: accept no more
		// gnet accepts nothing: the engine does (accept.go). gnet wants
		// a listener all the same; a UDP socket creates no descriptor per
		// datagram, and OnTraffic ignores what a local process sends it.
		err := gnet.Rotate(h, []string{gnetPlaceholder},
			gnet.WithNumEventLoop(e.router.Shards()),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTicker(true),
			gnet.WithReadBufferCap(64<<10),
			gnet.WithWriteBufferCap(16<<10),
			gnet.WithLogger(gnetLogger{e.log}),
		)
		select {
		case e.booted <- err:
		default:
		}
		if err == nil && !e.draining.Load() {
			err = errors.New("event loops stopped unexpectedly")
		}
		e.stopErr = err
		if err != nil {
			e.log.Error("event loops stopped", "err", err)
		}
	}()
	if err := <-e.booted; err != nil {
		e.closeListeners()
		return fmt.Errorf("loop: start: %w", err)
	}
	if err := e.startShards(); err != nil {
		e.closeListeners()
		return err
	}
	if (e.opts.Park || testPark) && !e.parkWarned.Load() {
		e.log.Info("idle loops wait in Go's netpoller (park)")
	}
	e.startAccepting()
	return nil
}

// Done is closed when the event loops have stopped: after Shutdown, or
// unexpectedly (Err says why), in which case the process should exit so
// that its supervisor restarts it.
func (e *Engine) Done() <-chan struct{} { return e.stopped }

// Err returns why the event loops stopped, once Done is closed.
func (e *Engine) Err() error {
	select {
	case <-e.stopped:
		return e.stopErr
	default:
		return nil
	}
}

// Addrs returns the bound address of every listener, in configuration
// order. Valid after Start.
func (e *Engine) Addrs() []net.Addr {
	out := make([]net.Addr, len(e.lns))
	for i, ln := range e.lns {
		out[i] = ln.addr
	}
	return out
}

// Shutdown stops accepting connections, says GOODBYE
// (wamp.close.system_shutdown) to every session, waits for them to close
// and for the output of those that linger to be written (awaitLingering)
// or for ctx, then closes what is left and stops the loops. Later calls
// wait for the first one to finish (or for their ctx) and return nil.
//
// It returns by ctx's end (but for TLS handshake goroutines, waited for
// up to 2 s past it: tlsPool.wait, and for the loops' stop, up to 1 s
// past it): when ctx has run out before the loops stopped (a session
// that did not close took it) they are waited for 1 s more; a loop
// wedged in a callback for longer is left: Shutdown returns ctx's error
// and leaves the loops' stop going, bounded by 10 s; Done is closed when
// they have stopped.
func (e *Engine) Shutdown(ctx context.Context) error {
	first := false
	e.shutOnce.Do(func() { first = true })
	if !first {
		select {
		case <-e.shutDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(e.shutDone)
	e.draining.Store(true)
	err := e.stopAccepting(ctx)
	if rerr := e.router.Shutdown(ctx); rerr != nil && err == nil {
		err = rerr
	}
	if !e.launched.Load() {
		// Never started (or Start failed before the loops): no loop to
		// stop. Before, Shutdown waited 10 s for loops that never ran.
		e.tlsPool.stop()
		if werr := e.tlsPool.wait(ctx); werr != nil && err == nil {
			err = werr
		}
		return err
	}
	e.awaitLingering(ctx)
	stopCtx, cancel := context.WithTimeout(context.Background(), loopStopWait)
	// gnet's Stop tells the loops to stop, then looks every 500 ms whether
	// they have, so that every Shutdown took at least half a second (of a
	// systemctl stop, and of every test that stops an engine). The loops'
	// end closes e.stopped at once (gnet.Rotate returns after its stop):
	// Stop runs aside, and is cut short once they have ended.
	stopErr := make(chan error, 1)
	go func() {
		select {
		case <-e.stopped:
		case <-stopCtx.Done():
		}
		cancel()
	}()
	go func() { stopErr <- e.eng.Stop(stopCtx) }()
	left := false
	select {
	case <-e.stopped:
	case <-stopCtx.Done():
		// gnet did not stop its loops within loopStopWait (never seen):
		// Shutdown returns anyway, bounded, and says so. Unless they did:
		// the watcher above cancels stopCtx as they end, and a select
		// reached after both may take either case.
		select {
		case <-e.stopped:
		default:
			if err == nil {
				err = errors.New("loop: shutdown: the event loops did not stop within " + loopStopWait.String())
			}
		}
	case <-ctx.Done():
		// Loops that are not wedged stop within milliseconds of being
		// told, also when ctx ran out on the sessions (or was done
		// before Shutdown): they are waited for loopLeftGrace past it,
		// so that a healthy engine is stopped when Shutdown returns.
		// Before, Shutdown returned at once with them still running
		// (TestShutdownWithExpiredContextStopsHealthyLoops).
		t := time.NewTimer(loopLeftGrace)
		select {
		case <-e.stopped:
		case <-t.C:
			left = true
		}
		t.Stop()
	}
	if left {
		// ctx has run out (on sessions that did not close, a wedged
		// loop's among them) before the loops stopped: Shutdown returns
		// by it, as it promises. Before, the stop had 10 s of its own
		// past ctx, which a wedged loop (a callback stuck) took whole.
		// The stop goes on aside, bounded by loopStopWait: Done is
		// closed once the loops have stopped (never, if one stays
		// wedged), and the TLS handshakes left are closed after them.
		if err == nil {
			err = fmt.Errorf("loop: shutdown: the event loops had not stopped: %w", ctx.Err())
		}
		go func() {
			<-stopErr
			e.tlsPool.stop()
		}()
		return err
	}
	cancel()
	if serr := <-stopErr; serr != nil && !errors.Is(serr, context.Canceled) && !errors.Is(serr, context.DeadlineExceeded) && err == nil {
		err = serr
	}
	// The loops closed every connection, and stop closes whatever
	// handshake is left: the handshake goroutines end, but for a
	// computation in progress.
	e.tlsPool.stop()
	if werr := e.tlsPool.wait(ctx); werr != nil && err == nil {
		err = werr
	}
	return err
}

// loopStopWait bounds gnet's stop of the event loops, which Shutdown
// waits for within its context (and loopLeftGrace past it): a loop
// wedged for longer is left so.
const (
	loopStopWait  = 10 * time.Second
	loopLeftGrace = time.Second
)

// Drain prepares a stop: it closes the WAMP listeners (the connections
// open stay, and the loops keep serving them; the HTTP lane's stay open
// until Shutdown, so that the gateway answers its new requests 503 while
// it drains), then drains
// the router (route.Router.Drain: no new invocations for its callees,
// registrations withdrawn from the mesh, calls in progress left to end)
// until nothing is in progress or ctx is done. Call Shutdown after it.
// Safe for concurrent use; it blocks.
func (e *Engine) Drain(ctx context.Context) error {
	e.closeWAMPListeners()
	return e.router.Drain(ctx)
}

// now returns the coarse clock of the deadlines: Options.Now as of the
// last tick, in nanoseconds, on the scale of unix time at New.
func (e *Engine) now() int64 { return e.clock.Load() }

// readClock reads Options.Now for the deadlines: the time since New by
// time.Time.Sub, which takes the monotonic readings of time.Now (a fake
// clock without them is taken as it reads, as before), added to New's
// unix time. Before, it was Options.Now's UnixNano, the wall clock: a step
// of the system clock (NTP's first sync on a board without a real-time
// clock, date -s, a VM resumed) moved every deadline by the step, so that
// a step back held off every handshake, keepalive, idle, closing and
// linger deadline for its length, and a step forward fired them all at
// the next scan (an idle_timeout closed every session).
func (e *Engine) readClock() int64 { return e.epochNs + int64(e.opts.Now().Sub(e.epoch)) }

// monotime returns a fine clock for the flush policy (nanoseconds since the
// engine started; monotonic).
func (e *Engine) monotime() int64 { return int64(time.Since(e.started)) }

// loopOf returns the state of an event loop, creating it (and starting its
// router shard) the first time the loop is seen.
func (e *Engine) loopOf(el gnet.EventLoop) *loopState {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ls := e.loops[el]; ls != nil {
		return ls
	}
	if e.nloops >= e.router.Shards() {
		panic("loop: more event loops than router shards") // programmer error: Options and route.Config disagree
	}
	ls := &loopState{e: e, el: el, shard: e.router.Shard(e.nloops)}
	ls.poolMax = poolCap(e.opts.MaxOutboundTotal, e.router.Shards())
	ls.keepMax = outBufKeep(e.opts.HighWater, ls.poolMax)
	ls.laneBR = newLaneBR()
	ls.flushFn = gnet.RunnableFunc(ls.roundFlush)
	if e.nloops < len(e.rings) {
		ls.ring = e.rings[e.nloops]
	}
	e.nloops++
	if e.opts.Park || testPark {
		ls.startPark()
	}
	ls.batchFn = ls.runBatches
	ls.findGnetPoller()
	ls.shard.Start(ls)
	e.loops[el] = ls
	return ls
}

func (e *Engine) allLoops() []*loopState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*loopState, 0, len(e.loops))
	for _, ls := range e.loops {
		out = append(out, ls)
	}
	return out
}

// handler is the gnet event handler.
type handler struct {
	gnet.BuiltinEventEngine
	e *Engine
}

// OnBoot runs before gnet creates its event loops: too early to report the
// engine started, since tasks must not be sent to the loops before they
// exist. The first OnTick reports it: gnet starts the ticker once the loops
// run.
func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	h.e.eng = eng
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	e := h.e
	if _, ok := c.Context().(warmupConn); ok { // warmup.go
		e.loopOf(c.EventLoop()).parkAfter() // from boot on, an idle loop parks
		e.warm.Add(1)
		return nil, gnet.None
	}
	// An acceptor counted the descriptor (accept.go); the count is the
	// connection's from here, released when it closes (close.go).
	acc, ok := c.Context().(*accepted)
	if !ok {
		return nil, gnet.Close // nothing else enrolls connections
	}
	acc.opened.Store(true)
	// The connection stops counting as pending for pickLoop when OnOpen
	// returns, after add counted it among the loop's connections (or it
	// was refused). Left to the acceptor's goroutine, the decrement came
	// whenever the scheduler ran it: meanwhile the connection counted
	// twice, and under the race detector on a slow machine the picks
	// leaned to the other loop (13 and 19 of 32 connections in CI).
	defer acc.loop.pending.Add(-1)
	e.opens.Add(1)
	ln := acc.ln
	if e.draining.Load() {
		e.fds.Add(-1)
		acc.releaseAddr(e)
		return nil, gnet.Close
	}
	over := ln.conns.Add(1) > int64(ln.cfg.MaxConns)
	if over && ln.tls != nil {
		// Over the cap a TLS connection gets no polite answer: a 503 would
		// cost a handshake per flooding connection. Closed at once.
		ln.conns.Add(-1)
		e.fds.Add(-1)
		acc.releaseAddr(e)
		ln.closes[CloseMaxConns].Add(1)
		return nil, gnet.Close
	}
	remote := ""
	ra := c.RemoteAddr()
	if ra != nil {
		remote = ra.String()
	}
	ls := e.loopOf(c.EventLoop())
	cn := &conn{c: c, in: c, ls: ls, ln: ln, remote: remote, opened: e.now(), overLimit: over, src: acc.src, srcCounted: acc.counted, proxied: acc.proxied}
	cn.lastRead = cn.opened
	// Every connection starts by sniffing its first byte, restricted
	// listeners included: detect refuses the other transport at once (a
	// RawSocket handshake read as HTTP would wait for the handshake
	// timeout). A TLS connection sniffs its first decrypted byte, after
	// its handshake.
	cn.phase = phDetect
	if ln.cfg.Transport == HTTPLane {
		cn.phase = phLane
		cn.lane = &laneState{}
	}
	if ln.tls != nil {
		src := acc.src
		if acc.proxied {
			src = netip.Addr{} // a trusted proxy's handshakes are not bounded per address (proxy.go)
		}
		cn.tls = newTLSConn(cn, ln.tls, c.LocalAddr(), ra, src)
		cn.phase = phTLS
		e.tlsConns.Add(1)
	}
	c.SetContext(cn)
	ls.add(cn)
	ls.parkAfter()
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	cn, ok := c.Context().(*conn)
	if !ok {
		// Not a connection of ours (a datagram to gnet's placeholder):
		// the round still ends parked, and runs what waits in the inbox.
		h.e.loopOf(c.EventLoop()).parkAfter()
		return gnet.Close
	}
	ls := cn.ls
	ls.enterTraffic()
	cn.traffic()
	cn.stashRest()
	cn.account()
	if cn.phase == phDead {
		ls.flush() // its last output (close frame, error reply) goes before the close
		ls.lastActive = ls.e.monotime()
		ls.exit()
		ls.parkAfter()
		if cn.lingering && cn.phase == phDead {
			// Its session's last output waits in gnet's buffer (flush.go:
			// linger): what the peer sends meanwhile is dropped.
			cn.c.Discard(-1)
			cn.account()
			return gnet.None
		}
		return gnet.Close
	}
	ls.leave()
	if cn.phase == phGone {
		// Its write failed and gnet closed it within the flush: tell gnet
		// not to keep its unread input (Close on a closed connection is a
		// no-op).
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	cn, ok := c.Context().(*conn)
	if !ok {
		if _, ok := c.Context().(warmupConn); ok {
			h.e.warm.Add(-1)
		}
		return gnet.None
	}
	cn.closed(err)
	cn.ls.parkAfter()
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine: it advances the engine's coarse
// clock (Options.Now) and, once a second, has every loop scan its
// connections for handshake, keepalive and idle deadlines. (The router runs
// its own timers.)
func (h *handler) OnTick() (time.Duration, gnet.Action) {
	e := h.e
	e.clock.Store(e.readClock())
	if !e.ticked {
		e.ticked = true
		e.booted <- nil // Start returns: the loops run
	}
	// The scan runs once a second of wall time, whatever the clock of the
	// deadlines says: it also counts the output gnet drained and sends
	// waiting pongs.
	now := time.Now()
	if now.Sub(e.lastScan) >= time.Second {
		e.lastScan = now
		for _, ls := range e.allLoops() {
			ls.Execute(ls.scan)
		}
	}
	e.releaseAfterBurst(now) // memburst.go
	return 100 * time.Millisecond, gnet.None
}

// gnetLogger adapts slog to gnet's logger (gnet logs rarely: start, stop,
// internal errors).
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
