package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The engine accepts its connections itself and hands each to an event
// loop with gnet's EventLoop.Enroll; gnet is given no TCP listener. gnet's own
// acceptor stops the whole engine, every session with it, on any accept
// error but EAGAIN, EINTR, ECONNRESET and ECONNABORTED: EMFILE, which the
// rest of the process can cause whatever the engine counts (the gateway's
// connections, NATS's, a file), and ENFILE, ENOBUFS, ENOMEM, which the rest
// of the system can. An acceptor of ours pauses after such an error and
// accepts again (as net/http does), and the connections wait in the listen
// backlog meanwhile; nothing else notices.
//
// Owning accept also makes the descriptor accounting exact (fdlimit.go):
// the acceptor counts a connection as it accepts it, before it hands it
// over, so however starved the loops are the descriptors the connections
// hold never pass the budget by more than one per listener (accepted, to be
// closed because the budget is spent) plus the enrollments in flight (gnet
// dups the descriptor, and closes our copy once the loop has it). The
// enrollments in flight are bounded (enrollWindow): when the loops do not
// take connections, the acceptors wait, and then the kernel's backlog.
//
// The acceptor also picks the loop (pickLoop), the one with the fewest
// connections counting those enrolled and not yet opened. gnet's
// least-connections balancing counts only the opened ones: a burst of
// connects enrolled faster than the loops open them (a loop busy with a
// fan-out, a restart's reconnect storm) all went to the first loop, tied
// at the same count.
//
// The cost is per connection, not per message: the Go runtime's poller
// registration of the accepted socket, a dup and a close, a hop through
// gnet's goroutine pool and the loop's task queue. BenchmarkConnSetup
// (connect, RawSocket handshake, close; its clients in the same process on
// two shared cores) measured 148.5 µs ±10% a connection before and 163.6 µs
// ±10% after (p=0.052, 10 interleaved runs each).

// gnetPlaceholder is the listener gnet is given (it refuses to run without
// one): a UDP socket on the loopback interface. No connection can reach
// it, and a datagram a local process sends it takes no descriptor (gnet
// reads it on a loop and OnTraffic drops it). With a UDP listener gnet runs
// every loop on its own (SO_REUSEPORT mode: one UDP socket per loop, no
// main reactor).
const gnetPlaceholder = "udp4://127.0.0.1:0"

// listenBacklog is the listen backlog of every listener: enough for bursts
// of thousands of connects a second (a client whose SYN finds the queue full
// retries). Connections in the backlog hold no descriptor of ours.
const listenBacklog = 512

// Pauses of a listener after a failed accept: doubled from the first to
// the last while accept keeps failing.
const (
	acceptPauseMin = 5 * time.Millisecond
	acceptPauseMax = time.Second
)

// errEnrollFailed stands for a failed enrollment in acceptLoop.
var errEnrollFailed = errors.New("loop: an accepted connection could not be enrolled")

// acceptState is the engine's accepting side.
type acceptState struct {
	ls     []net.Listener // one per Engine.lns, in order; static after Start
	loops  []*loopState   // every event loop; static after Start
	next   atomic.Uint32  // where pickLoop starts looking (breaks ties)
	window chan struct{}  // a token per enrollment in flight; cap enrollWindow
	stop   chan struct{}  // closed to stop the acceptors
	once   sync.Once      // closes stop and the listeners
	wg     sync.WaitGroup // acceptors and enrollments in flight
	errs   atomic.Uint64  // accepts that failed
	logs   logLimiter     // accept failure lines
}

// accepted is the gnet context of an enrolled connection until OnOpen
// replaces it: the listener that accepted it, and whether OnOpen took over
// its descriptor's count.
type accepted struct {
	ln      *listenerState
	loop    *loopState // the loop picked, whose pending count includes this one
	src     netip.Addr // the client's source (clientSource)
	counted bool       // counted under src in Engine.perAddr, until OnOpen moves the count to the conn (peraddr.go)
	proxied bool       // from one of the listener's TrustedProxies: not counted at accept (proxy.go)
	opened  atomic.Bool
}

// releaseAddr gives back the per-address count of a connection that
// never became a conn.
func (a *accepted) releaseAddr(e *Engine) {
	if a.counted {
		a.counted = false
		e.perAddr.release(a.src)
	}
}

// listen binds every listener, so that Start fails at once on an address in
// use and Addrs knows every port (port 0 is resolved by this one bind).
func (e *Engine) listen() error {
	lc := net.ListenConfig{KeepAlive: -1} // the router pings its peers itself
	for _, ln := range e.lns {
		l, err := listenTCP(lc, ln.cfg.Addr)
		if err != nil {
			e.closeListeners()
			what := "listener"
			if ln.cfg.Transport == HTTPLane {
				what = "HTTP gateway listener" // gateway.listen, not listeners[]
			}
			return fmt.Errorf("loop: %s %s: %w", what, ln.cfg.Addr, err)
		}
		e.acc.ls = append(e.acc.ls, l)
		ln.addr = l.Addr()
	}
	return nil
}

// listenTCP listens on addr as gnet would: an IPv4 address on IPv4 only, an
// IPv6 one on IPv6 only, an empty host on both.
func listenTCP(lc net.ListenConfig, addr string) (net.Listener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	network := "tcp"
	switch {
	case ta.IP == nil:
	case ta.IP.To4() != nil:
		network = "tcp4"
	default:
		network = "tcp6"
	}
	l, err := lc.Listen(context.Background(), network, ta.String())
	if err != nil {
		return nil, err
	}
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err == nil {
		var lerr error
		err = rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), listenBacklog) })
		if err == nil {
			err = lerr
		}
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listen backlog: %w", err)
	}
	return l, nil
}

// startAccepting starts one acceptor per listener. The loops must run.
func (e *Engine) startAccepting() {
	e.acc.loops = e.allLoops() // startShards has seen every loop
	for i, l := range e.acc.ls {
		e.acc.wg.Add(1)
		go e.acceptLoop(e.lns[i], l)
	}
}

// closeListeners closes every listener; the acceptors return. Idempotent;
// safe for concurrent use.
func (e *Engine) closeListeners() {
	e.acc.once.Do(func() {
		close(e.acc.stop)
		for _, l := range e.acc.ls {
			l.Close()
		}
	})
}

// closeWAMPListeners closes the listeners but the HTTP lane's (Drain):
// their acceptors return. A connection accepted meanwhile still lands;
// the router refuses its HELLO. Safe for concurrent use.
func (e *Engine) closeWAMPListeners() {
	for i, l := range e.acc.ls {
		if e.lns[i].cfg.Transport != HTTPLane {
			l.Close()
		}
	}
}

// stopAccepting closes the listeners and waits, within ctx, for the
// acceptors to return and the enrollments in flight to land (OnOpen closes
// them: the engine is draining). The loops must still run.
func (e *Engine) stopAccepting(ctx context.Context) error {
	e.closeListeners()
	done := make(chan struct{})
	go func() { e.acc.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-e.stopped:
		return nil // the loops stopped unexpectedly: what is in flight never lands
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acceptLoop accepts l's connections until l is closed. A failed accept
// or enrollment pauses it, doubling the pause until a connection reaches its
// loop again; it never stops the engine.
func (e *Engine) acceptLoop(ln *listenerState, l net.Listener) {
	defer e.acc.wg.Done()
	var pause time.Duration
	for {
		var c net.Conn
		err := errEnrollFailed
		if !ln.enrollFailed.Swap(false) { // counted and logged by enrollFailed
			c, err = l.Accept()
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, acceptPauseMin), acceptPauseMax)
			if err != errEnrollFailed {
				e.acc.errs.Add(1)
				if suppressed, ok := e.acc.logs.take(e.monotime()); ok {
					e.log.Warn("accept failed: the listener pauses (connections wait in its backlog)",
						"listener", ln.cfg.Addr, "err", err, "pause", pause, "suppressed", suppressed)
				}
			}
			ln.enrolled.Store(false)
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-e.acc.stop:
				t.Stop()
				return
			}
			continue
		}
		if ln.enrolled.Load() {
			// A connection reached its loop since the last failure. Not
			// reset at the accept: after a failed enrollment accept
			// succeeds (the descriptor closed is free again), and the
			// pauses would stay at the first.
			pause = 0
		}
		e.enroll(ln, c)
	}
}

// enroll counts c's descriptor and hands c to a loop (OnOpen), or closes it
// at once, unanswered, past the budget. It blocks while enrollWindow
// enrollments are in flight.
func (e *Engine) enroll(ln *listenerState, c net.Conn) {
	src, counted, proxied, ok := e.takeAddr(ln, c.RemoteAddr())
	if !ok {
		e.refuseAddr(ln, c, src) // before anything else: no descriptor counted, no loop involved
		return
	}
	tok := &accepted{ln: ln, src: src, counted: counted, proxied: proxied}
	if !e.takeFDs(1) {
		e.log.Debug("connection closed: open-file budget reached", "remote", c.RemoteAddr())
		c.Close()
		tok.releaseAddr(e)
		return
	}
	select {
	case e.acc.window <- struct{}{}:
	case <-e.acc.stop:
		c.Close()
		e.fds.Add(-1)
		tok.releaseAddr(e)
		return
	case <-e.stopped:
		c.Close()
		e.fds.Add(-1)
		tok.releaseAddr(e)
		return
	}
	ls := e.pickLoop()
	tok.loop = ls
	ls.pending.Add(1)
	res, err := ls.el.Enroll(gnet.NewContext(context.Background(), tok), c)
	if err != nil {
		ls.pending.Add(-1)
		c.Close()
		e.fds.Add(-1)
		tok.releaseAddr(e)
		<-e.acc.window
		return
	}
	e.acc.wg.Add(1)
	go func() {
		defer e.acc.wg.Done()
		// res is closed once gnet has closed c, its dup registered with the
		// loop (OnOpen ran) or closed on failure.
		var failed error
		for r := range res {
			if r.Err != nil {
				failed = r.Err
			}
		}
		if !tok.opened.Load() { // else OnOpen moved it from pending to the loop's connections
			ls.pending.Add(-1)
			e.fds.Add(-1)
			tok.releaseAddr(e)
			if failed != nil && !e.draining.Load() { // not gnet refusing a shutting-down engine's
				e.enrollFailed(ln, failed)
			}
		} else {
			ln.enrolled.Store(true)
		}
		<-e.acc.window
	}()
}

// enrollFailed counts and logs an accepted connection that gnet could not
// take (closed: the client sees its connection closed unanswered), and has
// ln's acceptor pause before its next accept, as after a failed accept.
//
// gnet duplicates the descriptor it is given, so a connection needs a
// second free descriptor after accept's: where only one is left (the
// rest of the process took the others) accept succeeds and the
// duplicate fails with EMFILE. Counted nowhere and followed by no pause,
// each such connection was taken from the backlog and closed, and the
// descriptor freed let the next accept succeed: the acceptor emptied the
// backlog that way, never seeing EMFILE, where the connections are meant
// to wait in it (TestConnectionFloodStarvedLoops saw no accept fail with
// every descriptor taken, its hog having left a few free).
func (e *Engine) enrollFailed(ln *listenerState, err error) {
	e.acc.errs.Add(1)
	ln.enrollFailed.Store(true)
	if suppressed, ok := e.acc.logs.take(e.monotime()); ok {
		e.log.Warn("accept failed: an accepted connection could not be handed to its loop and was closed; the listener pauses (connections wait in its backlog)",
			"listener", ln.cfg.Addr, "err", err, "suppressed", suppressed)
	}
}

// pickLoop returns the loop with the fewest connections, opened or on their
// way (accept.go); of loops tied, the first from a start that moves on with
// every pick, so that ties alternate. Counts read while other acceptors
// enroll may be a connection behind; balance needs no more.
func (e *Engine) pickLoop() *loopState {
	lss := e.acc.loops
	start := int(e.acc.next.Add(1)) % len(lss)
	best, bestN := lss[start], int32(1<<31-1)
	for i := range lss {
		ls := lss[(start+i)%len(lss)]
		if n := ls.nconns.Load() + ls.pending.Load(); n < bestN {
			best, bestN = ls, n
		}
	}
	return best
}
