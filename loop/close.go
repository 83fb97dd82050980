package loop

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// CloseReason says why a connection closed. Each connection records one,
// the first cause (a session that ends with GOODBYE and whose peer then
// resets is "session_closed"); it is logged once, when the connection
// closes, and counted (Engine.Stats).
type CloseReason uint8

// Close reasons. The String of each is its metrics label.
const (
	closeNone CloseReason = iota // not recorded yet

	// ClosePeer: the peer closed the TCP connection.
	ClosePeer
	// CloseReset: reading or writing failed (connection reset, broken
	// pipe).
	CloseReset
	// CloseSession: the router ended the session (after GOODBYE or ABORT).
	CloseSession
	// CloseWSClose: the peer started the WebSocket closing handshake.
	CloseWSClose
	// CloseProtocol: the peer broke WebSocket or RawSocket framing (the
	// WAMP-level violations end the session instead: CloseSession).
	CloseProtocol
	// CloseTooBig: a message longer than the limit (max_message, or the
	// RawSocket length announced).
	CloseTooBig
	// CloseHandshake: the WebSocket upgrade or the RawSocket handshake was
	// refused (an HTTP 4xx, a RawSocket error reply).
	CloseHandshake
	// CloseHTTP: a plain HTTP request (the health check) was answered.
	CloseHTTP
	// CloseNotWAMP: the first bytes are neither a RawSocket handshake nor
	// an HTTP request, or ask for a transport the listener does not serve.
	CloseNotWAMP
	// CloseMaxConns: the listener's max_connections was reached.
	CloseMaxConns
	// CloseHandshakeTimeout: the handshake did not complete within
	// handshake_timeout.
	CloseHandshakeTimeout
	// CloseKeepalive: our ping went unanswered for the ping timeout.
	CloseKeepalive
	// CloseIdle: no inbound traffic for idle_timeout.
	CloseIdle
	// CloseSlowConsumer: the peer does not take its output (backlog over
	// hard_limit, or a pong waiting longer than the ping timeout).
	CloseSlowConsumer
	// CloseInboundBudget: partial inbound messages over
	// max_inbound_total.
	CloseInboundBudget
	// CloseShutdown: the engine stopped.
	CloseShutdown
	// CloseTLS: the TLS layer failed: a failed handshake, a record that
	// does not decrypt or is too long, an alert from the peer, a
	// renegotiation attempt, a post-handshake handshake message over
	// tlsPostHandshakeMax, first bytes that are not a TLS ClientHello.
	CloseTLS
	// CloseHandOff: an HTTP lane connection went to net/http (lane.go).
	CloseHandOff
	// CloseTLSPerAddress: the client's TLS handshake would have started
	// while its address (IPv6: its /64) already had
	// max_tls_handshakes_per_address in progress; closed unanswered.
	CloseTLSPerAddress
	// CloseConnsPerAddress: the client's address (IPv6: its /64) already
	// had max_connections_per_address connections open on the WAMP
	// listeners; closed at accept, unanswered (peraddr.go).
	CloseConnsPerAddress

	// NumCloseReasons is the number of close reasons (the length of
	// Stats.Closes; reason 0 is never recorded).
	NumCloseReasons
)

var closeReasonNames = [NumCloseReasons]string{
	closeNone:             "none",
	ClosePeer:             "peer_closed",
	CloseReset:            "reset",
	CloseSession:          "session_closed",
	CloseWSClose:          "websocket_close",
	CloseProtocol:         "protocol_error",
	CloseTooBig:           "message_too_big",
	CloseHandshake:        "handshake_refused",
	CloseHTTP:             "http_answered",
	CloseNotWAMP:          "not_wamp",
	CloseMaxConns:         "max_connections",
	CloseHandshakeTimeout: "handshake_timeout",
	CloseKeepalive:        "keepalive_timeout",
	CloseIdle:             "idle_timeout",
	CloseSlowConsumer:     "slow_consumer",
	CloseInboundBudget:    "inbound_budget",
	CloseShutdown:         "shutdown",
	CloseTLS:              "tls_error",
	CloseHandOff:          "http_handoff",
	CloseTLSPerAddress:    "tls_handshakes_per_address",
	CloseConnsPerAddress:  "connections_per_address",
}

// String returns the reason's label, e.g. "slow_consumer".
func (r CloseReason) String() string {
	if r < NumCloseReasons {
		return closeReasonNames[r]
	}
	return "unknown"
}

// abnormal reports whether a close is worth an info-level log line: the
// peer misbehaved or a limit was hit.
func (r CloseReason) abnormal() bool {
	switch r {
	case ClosePeer, CloseReset, CloseSession, CloseWSClose, CloseHTTP, CloseShutdown, CloseHandOff:
		return false
	}
	return true
}

// Close-reason details: sentinels, so that recording a reason never
// allocates.
var (
	errTransportNotServed = errors.New("loop: transport not served on this listener")
	errMaxConns           = errors.New("loop: maximum connection count reached")
	errBacklogHard        = errors.New("loop: outbound backlog over the hard limit")
	errPongStalled        = errors.New("loop: pong not taken within the ping timeout")
	errPongBudget         = errors.New("loop: a large pong past the router-wide output budget")
	errPongTooLong        = errors.New("loop: rawsocket: PING longer than the peer accepts (its PONG cannot be sent)")
	errInboundBudget      = errors.New("loop: router inbound memory budget reached")
	errInboundStalled     = errors.New("loop: router inbound memory budget nearly reached, and this connection's partial message stopped growing")
	errInboundShed        = errors.New("loop: router inbound memory budget reached, and this connection's partial message had stopped growing")
	errPingUnanswered     = errors.New("loop: keepalive ping unanswered")
	errWrongFrameType     = errors.New("loop: websocket: wrong frame type for the subprotocol")
	errBadBatch           = errors.New("loop: websocket: malformed batch")
)

// die marks the connection for closing after its output is flushed, and
// records why (the first reason recorded stays; err is a detail for the
// log, a sentinel or an error already allocated). It writes and closes
// nothing itself (flush.go).
func (cn *conn) die(r CloseReason, err error) {
	if cn.phase == phGone {
		return
	}
	cn.setReason(r, err)
	if r == CloseSlowConsumer || r == CloseKeepalive {
		cn.abort = true // flush.go: sent
	}
	if cn.phase == phDead {
		return
	}
	cn.phase = phDead
	cn.ls.markDirty(cn)
	if cn.out == nil {
		cn.out = cn.buf() // so flush runs and closes
	}
}

// setReason records why the connection closes, unless a reason is
// recorded already.
func (cn *conn) setReason(r CloseReason, err error) {
	if cn.reason == closeNone {
		cn.reason, cn.reasonErr = r, err
	}
}

// wsFail sends a close frame with a status and a short text, and closes.
// In phClosing our close frame is out already: one is all a connection
// sends ([RFC6455 §5.5.1]: after sending a Close frame, nothing more).
func (cn *conn) wsFail(code ws.StatusCode, text string, r CloseReason, err error) {
	if cn.phase == phWS {
		cn.out = appendWSClose(cn.buf(), code, text)
	}
	cn.die(r, err)
}

// closed runs in OnClose: the connection is gone; the session (if any)
// leaves its realm. It may run inside a flush, from the write that failed
// (flush.go): it never writes or flushes, and frees only the connection's
// own state. Outside any entry point of ours (gnet closed the connection on
// its own) it queues a flush for what the session's departure produced for
// other connections.
//
// A connection the peer closes (EOF, a reset, after a Close frame) while
// the rest of a batch waits keeps its session until the rest, and the
// whole messages it sent before the close, are routed in their turns
// (batch.go): they were received. Its session leaves, and its close is
// logged and counted, then (leaveAfterBatch); meanwhile its held bytes
// stay counted in the inbound budget.
func (cn *conn) closed(err error) {
	if cn.phase == phGone {
		return
	}
	prev := cn.phase
	e := cn.ls.e
	if cn.lingering {
		cn.endLinger() // closed by gnet: its peer's reset, or the loops' stop
	}
	keep := prev == phWS && cn.batch != nil && cn.sess != nil && !e.draining.Load()
	if keep {
		cn.takeRest()
	}
	cn.phase = phGone
	cn.release()
	cn.releaseOut()
	if cn.out != nil {
		cn.ls.putBuf(cn.out)
		cn.out = nil
	}
	cn.pong = nil
	cn.dropBig()
	if !keep {
		cn.dropBatch()
	}
	cn.ls.remove(cn)
	if pk := cn.ls.parker; pk != nil && pk.out[cn.c.Fd()] == cn {
		delete(pk.out, cn.c.Fd()) // the descriptor may be another connection's soon
	}
	cn.ln.conns.Add(-1)
	e.fds.Add(-1)
	if cn.srcCounted {
		cn.srcCounted = false
		e.perAddr.release(cn.src)
	}
	if cn.tls != nil {
		cn.tls.close(cn.ls) // ends a handshake in progress
		if cn.ct != nil {
			cn.ls.putBuf(cn.ct)
			cn.ct = nil
		}
		e.tlsConns.Add(-1)
	}
	switch {
	case err != nil && errors.Is(err, io.EOF):
		cn.setReason(ClosePeer, nil)
	case err != nil && prev == phRaw && errors.Is(err, unix.ETIMEDOUT):
		// The kernel's keepalive or TCP_USER_TIMEOUT (rawkeepalive.go).
		cn.setReason(CloseKeepalive, err)
	case err != nil:
		cn.setReason(CloseReset, err)
	case e.draining.Load():
		cn.setReason(CloseShutdown, nil)
	default:
		cn.setReason(ClosePeer, nil)
	}
	if cn.lane != nil {
		cn.laneClosed()
	}
	if keep {
		cn.batch.prev = prev
		cn.held = cn.batch.held()
		e.inbound.Add(cn.held)
		return
	}
	cn.leave(prev)
}

// leave ends a closed connection's session and logs and counts its close.
func (cn *conn) leave(prev phase) {
	e := cn.ls.e
	var sid uint64
	if cn.sess != nil {
		sid = cn.sess.ID()
		cn.ls.shard.Detach(cn.sess)
		cn.sess = nil
		if cn.ls.depth == 0 && len(cn.ls.dirty) > 0 {
			cn.ls.queueFlush()
		}
	}
	e.logClose(cn, sid, prev)
	cn.ln.closes[cn.reason].Add(1) // after the log line: a counted close has been logged
}

// closeLogsPerSecond bounds the connection-close log lines (an attack
// closes thousands of connections a second); the lines left out are
// counted, and the next line logged says how many.
const closeLogsPerSecond = 20

// logClose writes the one log line of a closed connection: info level for
// an abnormal reason, debug otherwise; rate-limited.
func (e *Engine) logClose(cn *conn, sid uint64, prev phase) {
	level := slog.LevelDebug
	if cn.reason.abnormal() {
		level = slog.LevelInfo
	}
	ctx := context.Background()
	if !e.log.Enabled(ctx, level) {
		return
	}
	now := e.monotime()
	if cn.reason == CloseTLSPerAddress && !e.srcLogs.take(cn.tls.src, now) ||
		cn.reason == CloseConnsPerAddress && !e.addrLogs.take(cn.src, now) { // a trusted proxy's client (proxy.go)
		e.closeLogs.skip()
		return
	}
	suppressed, ok := e.closeLogs.take(now)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("remote", cn.remote), slog.String("reason", cn.reason.String()))
	if cn.via != "" {
		attrs = append(attrs, slog.String("via", cn.via))
	}
	if cn.reasonErr != nil {
		attrs = append(attrs, slog.String("detail", cn.reasonErr.Error()))
	}
	if sid != 0 {
		attrs = append(attrs, slog.Uint64("session", sid))
	}
	if prev < phWS {
		attrs = append(attrs, slog.Bool("in_handshake", true))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("close_logs_suppressed", suppressed))
	}
	e.log.LogAttrs(ctx, level, "connection closed", attrs...)
}

// logLimiter lets through at most closeLogsPerSecond lines per second.
// Safe for concurrent use.
type logLimiter struct {
	window     atomic.Int64 // the second (monotime) being counted
	n          atomic.Int64 // lines in that second
	suppressed atomic.Uint64
	total      atomic.Uint64 // lines suppressed since the start
}

// take reports whether a line may be logged now, and how many were
// suppressed since the last line logged.
func (l *logLimiter) take(now int64) (suppressed uint64, ok bool) {
	sec := now / int64(time.Second)
	if w := l.window.Load(); w != sec && l.window.CompareAndSwap(w, sec) {
		l.n.Store(0)
	}
	if l.n.Add(1) > closeLogsPerSecond {
		l.suppressed.Add(1)
		l.total.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}

// skip counts a line left out by another rate limit (srcLogLimiter).
func (l *logLimiter) skip() {
	l.suppressed.Add(1)
	l.total.Add(1)
}

// srcLogEvery is how often at most the connections of one source refused
// for max_tls_handshakes_per_address, or apart for
// max_connections_per_address, are logged: a client that holds its
// share and keeps connecting is refused hundreds of times a second, and
// its lines would take the close log's 20 a second from every other
// connection's.
const srcLogEvery = 5 * time.Second

// srcLogSlots is the size of srcLogLimiter's table, srcLogWays the slots
// of one set.
const (
	srcLogSlots = 256
	srcLogWays  = 4
)

// srcLogLimiter lets through at most one line per source per srcLogEvery,
// in a fixed table (a flood from many sources cannot grow it): each
// source has a set of srcLogWays slots (a seeded hash, which a client
// cannot aim), each holding a source logged there and when. A source
// whose set holds srcLogWays other sources logged within srcLogEvery is
// left out: the limiter lets through at most srcLogSlots lines per
// srcLogEvery whatever the sources. Before, each source had one slot, and
// two sources sharing it took it from each other at each line: a pair of
// refused addresses alternating (a few dozen addresses always hold such
// pairs) was logged at every refusal and took the close log's 20 lines a
// second (closeLogsPerSecond) from every other connection. Safe for
// concurrent use.
type srcLogLimiter struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots *[srcLogSlots]srcLogSlot // allocated at the first refusal
}

type srcLogSlot struct {
	src netip.Addr
	at  int64 // monotime of the line logged
}

// setOf returns the index of src's set (l.seed made).
func (l *srcLogLimiter) setOf(src netip.Addr) int {
	return int(maphash.Comparable(l.seed, src) % (srcLogSlots / srcLogWays))
}

// take reports whether a line about src may be logged now.
func (l *srcLogLimiter) take(src netip.Addr, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slots == nil {
		l.seed = maphash.MakeSeed()
		l.slots = new([srcLogSlots]srcLogSlot)
	}
	set := l.setOf(src) * srcLogWays
	ways := l.slots[set : set+srcLogWays]
	free := -1
	for i := range ways {
		w := &ways[i]
		if w.src == src {
			if now-w.at < int64(srcLogEvery) {
				return false
			}
			w.at = now
			return true
		}
		if free < 0 && (!w.src.IsValid() || now-w.at >= int64(srcLogEvery)) {
			free = i
		}
	}
	if free < 0 {
		return false
	}
	ways[free] = srcLogSlot{src, now}
	return true
}

// Stats is a snapshot of an engine's connection counters, for a metrics
// endpoint. Every field is read atomically; the snapshot as a whole is
// not (counters keep moving while it is taken).
type Stats struct {
	// Conns is the number of open connections on the WAMP listeners, TLS
	// ones (counted from accept) included; not the HTTP lane's (LaneConns).
	Conns int64
	// Lane says whether the engine has an HTTPLane listener (the HTTP
	// gateway's port); LaneConns is the connections open on it, LaneCloses
	// those it closed by reason (as Closes), which Conns and Closes leave
	// out.
	Lane       bool
	LaneConns  int64
	LaneCloses [NumCloseReasons]uint64
	// TLSConns is the number of open TLS connections, handshakes included;
	// TLSHandshakes the handshakes running (each on a goroutine, at most
	// Options.MaxTLSHandshakes) and TLSHandshakesQueued those waiting for
	// one.
	TLSConns                           int64
	TLSHandshakes, TLSHandshakesQueued int
	// FDs is the descriptors the connections hold; FDBudget the most they
	// may (the open-file limit less a reserve); FDRefused the connections
	// closed unanswered because of it.
	FDs, FDBudget int64
	FDRefused     uint64
	// AcceptErrors counts accepts that failed (EMFILE: the process's
	// other descriptors took every free one; ENFILE, ENOBUFS, ENOMEM),
	// and accepted connections gnet could not take (its duplicate of the
	// descriptor failing with EMFILE: enrollFailed), after each of which
	// the listener paused (accept.go).
	AcceptErrors uint64
	// Inbound is the bytes of partial inbound messages held,
	// InboundBudget its bound (max_inbound_total), InboundRefused the
	// connections closed for it.
	Inbound, InboundBudget int64
	InboundRefused         uint64
	// Outbound is the output queued for peers that read slower than they
	// are sent to; OutboundBudget its bound (max_outbound_total);
	// OutboundRefused the EVENTs and INVOCATIONs of 64 KiB or more refused
	// because they would have taken it past the bound.
	Outbound, OutboundBudget int64
	OutboundRefused          uint64
	// PongsCoalesced counts pings answered only by the pong of a later
	// ping, because the peer did not take its output (pong.go).
	PongsCoalesced uint64
	// Lingering is the connections whose session ended and whose last
	// output is still being written (flush.go: linger); LingerResets the
	// ones reset because their peer stopped taking it.
	Lingering    int64
	LingerResets uint64
	// SendPath is how the loops write: SendPathIOUring or SendPathWrite
	// (Options.IOUring). RingEnters counts the io_uring_enter calls of the
	// send rings, RingSends the sends they submitted, RingPartial the sends
	// a socket did not take whole (their rest went to gnet's buffer),
	// RingFailures the loops whose ring failed while they ran (SendPath
	// stays the one chosen at start; those loops write with write(2)).
	SendPath                           string
	RingEnters, RingSends, RingPartial uint64
	RingFailures                       uint64
	// Closes counts the WAMP listeners' closed connections by reason,
	// indexed by CloseReason (the HTTP lane's are in LaneCloses).
	Closes [NumCloseReasons]uint64
	// MemReleases counts the times the engine returned the free heap to
	// the operating system after a burst of connections opened or closed
	// (memburst.go): twice per burst, early and final.
	MemReleases uint64
	// CloseLogsSuppressed counts close log lines left out by the rate
	// limit.
	CloseLogsSuppressed uint64
	// ProxyUnforwarded counts the WebSocket upgrades from a listener's
	// trusted proxy that named no client address (no X-Forwarded-For or
	// Forwarded, an unparsable one, trusted proxies only): the proxy's
	// address stood for the client (proxy.go).
	ProxyUnforwarded uint64
}

// Stats returns a snapshot of the engine's counters. Safe for concurrent
// use; it does not allocate (it takes the TLS handshake pool's lock).
func (e *Engine) Stats() Stats {
	var st Stats
	for _, ln := range e.lns {
		conns, closes := &st.Conns, &st.Closes
		if ln.cfg.Transport == HTTPLane {
			st.Lane = true
			conns, closes = &st.LaneConns, &st.LaneCloses
		}
		*conns += ln.conns.Load()
		for i := range closes {
			closes[i] += ln.closes[i].Load()
		}
	}
	st.TLSConns = e.tlsConns.Load()
	st.TLSHandshakes, st.TLSHandshakesQueued = e.tlsPool.counts()
	st.FDs, st.FDBudget, st.FDRefused = e.FDs()
	st.AcceptErrors = e.acc.errs.Load()
	st.Inbound, st.InboundBudget, st.InboundRefused = e.Inbound()
	st.Outbound, st.OutboundBudget, st.OutboundRefused = e.Outbound()
	st.PongsCoalesced = e.pongsCoalesced.Load()
	st.Lingering, st.LingerResets = e.lingering.Load(), e.lingerResets.Load()
	st.SendPath = e.sendPath
	st.RingEnters, st.RingSends, st.RingPartial = e.ringEnters.Load(), e.ringSends.Load(), e.ringPartial.Load()
	st.RingFailures = e.ringFailures.Load()
	st.MemReleases = e.memReleases.Load()
	st.CloseLogsSuppressed = e.closeLogs.total.Load()
	st.ProxyUnforwarded = e.proxyUnforwarded.Load()
	return st
}
