// Package fwd is wampfwd: a bare WAMP forwarder on gnet, the ceiling the
// router's architecture can approach. It speaks the router's wire
// (WebSocket and RawSocket on one port; JSON, MsgPack, CBOR) and does only
// what forwarding needs: HELLO→WELCOME (anonymous, any realm), REGISTER,
// SUBSCRIBE, CALL→INVOCATION→YIELD→RESULT (round robin over a procedure's
// callees), PUBLISH→EVENT to the topic's subscribers (exact match),
// GOODBYE. No authentication, authorization, validation, meta API, timeouts
// or options beyond acknowledge and exclude_me.
//
// Concurrency: one gnet event loop per core. A connection and its output
// buffer belong to the loop that accepted it; messages for a connection on
// another loop travel through that loop's mailbox, batched, and one
// publication is handed to each other loop once. The registration and
// subscription tables are shared, guarded by a RWMutex (read-locked on the
// call and publish paths).
package fwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/loop/uring"
)

// FlushPolicy says when a loop writes the output it queued.
type FlushPolicy int

const (
	// FlushAdaptive writes at the end of the callback when the loop was
	// idle before it (sparse traffic: lowest latency), else once per epoll
	// round.
	FlushAdaptive FlushPolicy = iota
	// FlushRound writes once per epoll round: every connection gets one
	// write however many messages were queued for it in the round.
	FlushRound
	// FlushTraffic writes at the end of every callback.
	FlushTraffic
)

// ParseFlushPolicy maps "adaptive", "round" or "traffic" to a policy.
func ParseFlushPolicy(s string) (FlushPolicy, error) {
	switch s {
	case "adaptive", "":
		return FlushAdaptive, nil
	case "round":
		return FlushRound, nil
	case "traffic":
		return FlushTraffic, nil
	}
	return 0, fmt.Errorf("fwd: unknown flush policy %q (want adaptive, round or traffic)", s)
}

// Options configure a Server. The zero value serves 127.0.0.1:0 with one
// loop per CPU.
type Options struct {
	Addr      string      // host:port; port 0 picks one
	Loops     int         // event loops; 0 = runtime.NumCPU()
	Flush     FlushPolicy // see FlushPolicy
	HighWater int         // EVENTs to a connection with more output pending are dropped; 0 = 256 KiB
	IOUring   string      // send path: "auto" (or ""), "on" or "off", as the router's tuning.io_uring (ring.go)
}

// Stats are the server's counters since start.
type Stats struct {
	Conns, Calls, Results, Publishes, Events, EventsDropped, Flushes, Writes uint64
	// RingEnters, RingSends, RingPartial: io_uring_enter calls, the sends
	// they submitted, and the sends a socket did not take whole.
	RingEnters, RingSends, RingPartial uint64
}

// Server is a running forwarder.
type Server struct {
	opts     Options
	addr     net.Addr
	rings    []*uring.Ring // one per loop on the io_uring path; closed after the loops stop
	sendPath string        // "io_uring" or "write"
	noRing   error         // why io_uring is not used under auto, or nil
	eng      gnet.Engine
	booted   chan error
	stopped  chan struct{}

	mu     sync.Mutex
	loops  map[gnet.EventLoop]*loopState
	tables tables

	nextID atomic.Uint64 // session, registration, subscription, publication and invocation ids

	closeMu sync.Mutex
	closes  map[string]int // why connections were closed; guarded by closeMu
	stats   struct {
		conns, calls, results, publishes, events, dropped, flushes, writes atomic.Uint64
		ringEnters, ringSends, ringPartial                                 atomic.Uint64
	}
}

// Start binds the listener and starts the loops; it returns once they run.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Loops <= 0 {
		opts.Loops = runtime.NumCPU()
	}
	if opts.HighWater <= 0 {
		opts.HighWater = 256 << 10
	}
	s := &Server{
		opts:    opts,
		booted:  make(chan error, 1),
		stopped: make(chan struct{}),
		loops:   map[gnet.EventLoop]*loopState{},
	}
	s.tables.init()
	path, why, err := s.startRings()
	if err != nil {
		return nil, err
	}
	s.sendPath, s.noRing = path, why
	logging.SetDefaultLoggerAndFlusher(quietLogger{}, nil) // Run logs a banner through it
	go func() {
		defer close(s.stopped)
		defer s.closeRings() // the loops are gone
		err := gnet.Run(&handler{s: s}, "tcp://"+opts.Addr,
			gnet.WithNumEventLoop(opts.Loops),
			gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReadBufferCap(64<<10),
			gnet.WithWriteBufferCap(16<<10),
			gnet.WithLogger(quietLogger{}),
		)
		select {
		case s.booted <- err:
		default:
		}
	}()
	if err := <-s.booted; err != nil {
		return nil, fmt.Errorf("fwd: start: %w", err)
	}
	return s, nil
}

// Addr returns the bound listen address.
func (s *Server) Addr() net.Addr { return s.addr }

// SendPath returns "io_uring" or "write", and under auto why io_uring is
// not used.
func (s *Server) SendPath() (string, error) { return s.sendPath, s.noRing }

// Stop closes every connection and stops the loops.
func (s *Server) Stop(ctx context.Context) error {
	err := s.eng.Stop(ctx)
	select {
	case <-s.stopped:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

func (s *Server) countClose(reason string) {
	if len(reason) > 80 {
		reason = reason[:80]
	}
	s.closeMu.Lock()
	if s.closes == nil {
		s.closes = map[string]int{}
	}
	s.closes[reason]++
	s.closeMu.Unlock()
}

// Closes returns how many connections were closed for each reason: the
// forwarder's (GOODBYE, protocol errors) and socket errors; a peer's
// orderly close is not counted. Safe for concurrent use.
func (s *Server) Closes() map[string]int {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	out := make(map[string]int, len(s.closes))
	for k, v := range s.closes {
		out[k] = v
	}
	return out
}

// Stats returns the counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	return Stats{
		Conns: s.stats.conns.Load(), Calls: s.stats.calls.Load(), Results: s.stats.results.Load(),
		Publishes: s.stats.publishes.Load(), Events: s.stats.events.Load(), EventsDropped: s.stats.dropped.Load(),
		Flushes: s.stats.flushes.Load(), Writes: s.stats.writes.Load(),
		RingEnters: s.stats.ringEnters.Load(), RingSends: s.stats.ringSends.Load(), RingPartial: s.stats.ringPartial.Load(),
	}
}

func (s *Server) loopOf(el gnet.EventLoop) *loopState {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.loops[el]
	if ls == nil {
		ls = &loopState{s: s, el: el, idx: len(s.loops)}
		if ls.idx < len(s.rings) {
			ls.ring = s.rings[ls.idx]
		}
		ls.drainFn = gnet.RunnableFunc(ls.drain)
		ls.flushFn = gnet.RunnableFunc(ls.roundFlush)
		s.loops[el] = ls
	}
	return ls
}

type handler struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := h.s
	s.eng = eng
	fd, err := eng.DupListener("tcp", s.opts.Addr)
	if err == nil {
		var sa unix.Sockaddr
		sa, err = unix.Getsockname(fd)
		unix.Close(fd)
		if a, ok := sa.(*unix.SockaddrInet4); ok && err == nil {
			s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
		} else if err == nil {
			err = errors.New("fwd: not an IPv4 listener")
		}
	}
	s.booted <- err
	if err != nil {
		return gnet.Shutdown
	}
	return gnet.None
}

func (h *handler) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	ls := h.s.loopOf(c.EventLoop())
	cn := &conn{c: c, ls: ls}
	c.SetContext(cn)
	h.s.stats.conns.Add(1)
	return nil, gnet.None
}

func (h *handler) OnTraffic(c gnet.Conn) gnet.Action {
	cn, ok := c.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	ls := cn.ls
	ls.enter()
	cn.traffic()
	ls.leave()
	if cn.dead && !cn.dirty {
		return gnet.Close
	}
	return gnet.None
}

func (h *handler) OnClose(c gnet.Conn, err error) gnet.Action {
	if cn, ok := c.Context().(*conn); ok {
		cn.closed(err)
	}
	return gnet.None
}

// loopState is one event loop's share of the server. Owned by the loop
// goroutine, except the mailbox (guarded by mbMu).
type loopState struct {
	s       *Server
	el      gnet.EventLoop // static
	idx     int            // static
	drainFn gnet.Runnable  // static
	flushFn gnet.Runnable  // static

	dirty       []*conn
	flushQueued bool  // a round flush task is queued
	lastActive  int64 // unix ns at the end of the last callback (adaptive policy)
	idle        bool  // this callback started after an idle spell
	pool        [][]byte
	codec       codec
	ring        *uring.Ring // nil on the write(2) path
	batch       []ringSend  // reused by flushRing

	mbMu     sync.Mutex
	mailbox  []task
	mbQueued bool
	spare    []task // drained slice, reused
}

// idleGap is how long a loop must have had nothing to do for the adaptive
// policy to write at once rather than at the end of the round.
const idleGap = 10 * time.Microsecond

func (ls *loopState) enter() {
	if ls.s.opts.Flush == FlushAdaptive {
		ls.idle = time.Now().UnixNano()-ls.lastActive > int64(idleGap)
	}
}

// leave ends a callback: it writes now or makes sure a round flush is
// queued, as the policy says.
func (ls *loopState) leave() {
	if len(ls.dirty) > 0 {
		switch {
		case ls.s.opts.Flush == FlushTraffic, ls.s.opts.Flush == FlushAdaptive && ls.idle:
			ls.flush()
		case !ls.flushQueued:
			ls.flushQueued = true
			if err := ls.el.Execute(context.Background(), ls.flushFn); err != nil {
				ls.flushQueued = false
				ls.flush()
			}
		}
	}
	if ls.s.opts.Flush == FlushAdaptive {
		ls.lastActive = time.Now().UnixNano()
	}
}

func (ls *loopState) roundFlush(context.Context) error {
	ls.flushQueued = false
	ls.flush()
	return nil
}

// markDirty queues cn for the next flush.
func (ls *loopState) markDirty(cn *conn) {
	if !cn.dirty {
		cn.dirty = true
		ls.dirty = append(ls.dirty, cn)
	}
}

// flush writes every dirty connection's output: one write each, or with a
// ring, one io_uring_enter per batch of two connections or more.
func (ls *loopState) flush() {
	ls.s.stats.flushes.Add(1)
	for i := 0; i < len(ls.dirty); {
		if ls.ring != nil && len(ls.dirty)-i >= 2 {
			i = ls.flushRing(i)
			continue
		}
		cn := ls.dirty[i]
		ls.dirty[i] = nil
		cn.dirty = false
		i++
		cn.flush()
	}
	ls.dirty = ls.dirty[:0]
}

// outBufCap is the size of pooled output buffers; bigger ones are dropped
// after use so an idle connection holds none.
const outBufCap = 16 << 10

func (ls *loopState) getBuf() []byte {
	if n := len(ls.pool); n > 0 {
		b := ls.pool[n-1]
		ls.pool = ls.pool[:n-1]
		return b
	}
	return make([]byte, 0, outBufCap)
}

func (ls *loopState) putBuf(b []byte) {
	if cap(b) == outBufCap && len(ls.pool) < 256 {
		ls.pool = append(ls.pool, b[:0])
	}
}

// task is work for a connection on another loop.
type task struct {
	kind   taskKind
	dst    *conn   // taskSend, taskInvoke
	dsts   []*conn // taskEvent
	msg    []byte  // encoded in the destination's serializer (event: per serializer)
	caller *conn   // taskInvoke
	req    uint64  // taskInvoke: the caller's request id
	inv    uint64  // taskInvoke: the invocation id
}

type taskKind uint8

const (
	taskSend taskKind = iota
	taskInvoke
	taskEvent
)

// post queues t on ls and wakes the loop if it is not already woken.
// Safe for concurrent use.
func (ls *loopState) post(t task) {
	ls.mbMu.Lock()
	ls.mailbox = append(ls.mailbox, t)
	wake := !ls.mbQueued
	ls.mbQueued = true
	ls.mbMu.Unlock()
	if wake {
		ls.el.Execute(context.Background(), ls.drainFn)
	}
}

// drain runs the mailbox on the loop, then flushes.
func (ls *loopState) drain(context.Context) error {
	ls.mbMu.Lock()
	batch := ls.mailbox
	ls.mailbox = ls.spare[:0]
	ls.mbQueued = false
	ls.mbMu.Unlock()
	for i := range batch {
		t := &batch[i]
		switch t.kind {
		case taskSend:
			t.dst.sendFramed(t.msg)
		case taskInvoke:
			if t.dst.dead {
				ls.failInvocation(t.caller, t.req)
				break
			}
			t.dst.addPending(t.inv, pending{caller: t.caller, req: t.req})
			t.dst.sendFramed(t.msg)
		case taskEvent:
			for _, d := range t.dsts {
				d.sendEvent(t.msg)
			}
		}
		*t = task{}
	}
	ls.spare = batch[:0]
	ls.flush()
	return nil
}

// quietLogger drops gnet's log lines (start-up banners); errors surface
// through the API.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(string, ...any) {}
