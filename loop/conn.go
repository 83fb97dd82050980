package loop

import (
	"errors"
	"net/netip"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

type phase uint8

const (
	phTLS     phase = iota // TLS handshake (tls.go): waiting for records, or for the handshake's goroutine
	phDetect               // waiting for the first byte
	phHTTP                 // reading the HTTP request
	phRawHS                // reading the RawSocket handshake
	phWS                   // WebSocket frames
	phRaw                  // RawSocket frames
	phLane                 // HTTP/1.1 requests of an HTTPLane listener (lane.go)
	phClosing              // WebSocket close frame sent; waiting for the peer's
	phDead                 // dying: closed after its pending output is flushed
	phGone                 // closed by gnet (conn.closed ran): inert
)

// conn is one client connection. It implements route.Peer. All fields are
// owned by the connection's event loop.
type conn struct {
	c      gnet.Conn
	in     inbound // what the parsers read: c, st (stash.go), or tls.plain
	st     *stash  // plaintext input left over from a read callback (stash.go); nil until the first
	ls     *loopState
	ln     *listenerState
	remote string
	src    netip.Addr // the client's source (clientSource); static
	tls    *tlsConn   // TLS connections (tls.go); nil for plaintext ones
	idx    int

	// srcCounted: counted under src in Engine.perAddr (peraddr.go), until
	// closed releases it.
	srcCounted bool
	// proxied: from one of the listener's TrustedProxies (proxy.go); via
	// is then the proxy's address once remote is the client's it named.
	proxied bool
	// hdrScan: phHTTP: the bytes of the request header scanned in earlier
	// reads (http.go: handleHTTPFrom); an int32 in the bools' padding.
	hdrScan int32
	via     string

	phase     phase
	overLimit bool
	ser       proto.Serializer
	batched   bool
	jsonSep   byte // a JSON batch's message separator, the peer's (batch.go: batchSep); 0 until its first batch
	wsr       wsReader
	raw       rawReader
	maxOut    int // longest message the peer accepts (RawSocket handshake); 0 = no limit
	sess      *route.Session
	lane      *laneState // HTTPLane connections (lane.go); nil otherwise

	out   []byte     // framed output not yet written (pooled; nil when idle); plaintext on TLS connections
	ct    []byte     // TLS connections: ciphertext not yet written (pooled; nil when idle)
	big   *bigFrame  // a large frame being received into chunks (large.go); nil when none
	batch *heldBatch // the rest of a batched message, routed a turn at a time (batch.go); nil when none
	pong  []byte     // payload of the latest ping, waiting for the backlog to drain (pong.go); nil when none
	dirty bool
	full  bool // spill found the socket full in this loop iteration (cleared by flush)
	// inflight is the length of the output an io_uring batch took from
	// the connection (sendring.go), from its take until the enter returns,
	// then what the socket did not take of it (all of it when it was not
	// queued: gnet held output for it), until its completion; 0 otherwise.
	inflight int

	opened   int64 // coarse unix ns
	lastRead int64
	pingSent int64 // 0 = no ping outstanding
	// rawPings: the RawSocket peer has sent a PING or a PONG, so it takes
	// the keepalive's PINGs (rawkeepalive.go); until then the kernel's
	// TCP keepalive watches it.
	rawPings  bool
	pongSince int64       // when cn.pong started waiting
	closeBy   int64       // phClosing: deadline for the peer's close frame (phWS, phRaw: see closeLeft)
	reason    CloseReason // why it closes: the first cause recorded (close.go)
	reasonErr error       // a detail of reason for the log, or nil
	held      int64       // bytes of partial input counted in Engine.inbound (budget.go)
	got       int64       // bytes of partial input received (budget.go: stalled)
	progGot   int64       // got at the last sign of progress
	progAt    int64       // coarse unix ns of that sign
	growGot   int64       // got at the last sign of growth, judged whatever the pressure (budget.go: shed)
	growAt    int64       // coarse unix ns of that sign
	stale     int64       // held bytes counted in Engine.staleHeld (budget.go: shed); 0 when not stale
	shedIn    uint64      // the shed round (Engine.shedRound) that closed it; 0: none
	outHeld   int64       // bytes of queued output counted in Engine.outbound
	// abort: the connection dies because its peer does not take its
	// output; it is closed with a reset (flush.go: sent), so that the
	// kernel does not keep what its send queue holds.
	abort bool
	// lingering: phDead, a session that ended whose last output gnet
	// still buffers: closed once gnet has written it, judged by the scan
	// (flush.go: linger); closeBy is then the deadline of the peer's next
	// lingerProgress bytes, closeLeft what gnet buffered at the last
	// judgement.
	lingering bool
	// closeLeft: phClosing: the output the peer had not taken when the
	// closing handshake began (unsent), to judge at its deadline whether
	// the peer is reading it. (closeBy and closeLeft serve lingering too.)
	// phWS, phRaw with a keepalive ping outstanding: the bytes the peer's
	// TCP had acknowledged when output waited ahead of the ping, or at the
	// last sign that it reads it; 0 when none waited (pingbehind.go);
	// closeBy then where the ping starts in the connection's output, on
	// the same count.
	closeLeft int64
}

// traffic parses everything buffered. gnet does not call OnTraffic again
// for bytes already buffered, so it stops only when a frame is incomplete
// or the connection is done.
func (cn *conn) traffic() {
	cn.lastRead = cn.ls.e.now()
	cn.pingSent = 0
	if cn.pong != nil {
		cn.sendWaitingPong(cn.lastRead)
	}
	switch {
	case cn.tls == nil:
		cn.parse()
	case !cn.tls.ready:
		// The handshake's goroutine owns the tls.Conn: a Read here would run
		// (and block on) the handshake on the loop.
		if cn.phase == phTLS {
			cn.tlsHandshakeIn()
		}
	case cn.phase < phDead:
		cn.tlsTraffic()
	}
}

// parse handles the input buffered in cn.in, handshake and frames, until a
// frame is incomplete or the connection is done.
func (cn *conn) parse() {
	for {
		var more bool
		switch cn.phase {
		case phDetect:
			more = cn.detect()
		case phHTTP:
			more = cn.http()
		case phRawHS:
			more = cn.rawHandshake()
		case phWS, phClosing:
			switch {
			case cn.big != nil:
				more = cn.bigFeed()
			case cn.batch != nil:
				more = cn.behindBatch()
			default:
				more = cn.wsFrame()
			}
		case phRaw:
			if cn.big != nil {
				more = cn.bigFeed()
			} else {
				more = cn.rawFrame()
			}
		case phLane:
			more = cn.laneRequest()
		default:
			return
		}
		if !more {
			return
		}
	}
}

func (cn *conn) detect() bool {
	b, err := cn.in.Peek(1)
	if err != nil {
		return false
	}
	if b[0] == rawMagic {
		cn.phase = phRawHS
		if cn.ln.cfg.Transport == WebSocketOnly {
			cn.die(CloseNotWAMP, errTransportNotServed)
			return false
		}
	} else {
		cn.phase = phHTTP
		if cn.ln.cfg.Transport == RawSocketOnly {
			cn.die(CloseNotWAMP, errTransportNotServed)
			return false
		}
	}
	return true
}

func (cn *conn) http() bool {
	o := cn.ls.e.http
	o.overLimit = cn.overLimit
	from := int(cn.hdrScan)
	res, n, err := handleHTTPFrom(cn.in, &o, &from)
	cn.hdrScan = int32(from)
	if err != nil {
		cn.die(CloseReset, err)
		return false
	}
	switch res.kind {
	case httpNeedMore:
		return false
	case httpDrop:
		cn.die(CloseNotWAMP, res.reason)
		return false
	case httpRespond:
		cn.writeNow(res.resp)
		cn.in.Discard(n)
		if res.status == 200 {
			cn.die(CloseHTTP, nil)
		} else if res.reason == errHTTPOverLimit {
			cn.die(CloseMaxConns, res.reason)
		} else {
			cn.die(CloseHandshake, res.reason)
		}
		return false
	}
	if cn.proxied && !cn.fromProxy(res.hdr) {
		cn.writeNow(proxyRefusal())
		cn.in.Discard(n)
		cn.die(CloseConnsPerAddress, errConnsPerAddress)
		return false
	}
	cn.writeNow(res.resp)
	cn.in.Discard(n)
	cn.ser, cn.batched = res.ser, res.batched
	cn.wsr = wsReader{maxMessage: cn.ls.e.opts.MaxMessage}
	cn.phase = phWS
	cn.sess = cn.ls.shard.Open(cn)
	return true
}

func (cn *conn) rawHandshake() bool {
	if cn.overLimit {
		r := errRawMaxConns.reply()
		cn.writeNow(r[:])
		cn.die(CloseMaxConns, errMaxConns)
		return false
	}
	hs, n, err := readRawHandshake(cn.in)
	if n == 0 && err == nil {
		return false
	}
	if err == nil && cn.proxied && !cn.countProxied(peerIP(cn.c.RemoteAddr())) {
		// RawSocket carries no client address: a trusted proxy's
		// connection counts under the proxy's (proxy.go).
		r := errRawMaxConns.reply()
		cn.writeNow(r[:])
		cn.die(CloseConnsPerAddress, errConnsPerAddress)
		return false
	}
	if err != nil {
		var hsErr rawHSError
		if errors.As(err, &hsErr) {
			r := hsErr.reply()
			cn.writeNow(r[:])
		}
		cn.die(CloseHandshake, err)
		return false
	}
	cn.in.Discard(n)
	exp := rawExpFor(cn.ls.e.opts.MaxMessage)
	reply := rawHandshakeReply(hs.ser, exp)
	cn.writeNow(reply[:])
	cn.ser = hs.ser
	// A message of exactly 2^24 octets is framed with the X bit, which
	// neither Autobahn reads (Autobahn|JS 22.11.1 takes 0x8 for the frame
	// type and its Node process dies on the frames after it; Autobahn|Python
	// 22.7.1's asyncio protocol reads an empty message, then the payload as
	// frames): a client announcing 2^24 is sent at most 2^24-1, what does
	// not fit refused as for any shorter maximum.
	cn.maxOut = min(hs.maxRecv, rawMaxLength-1)
	cn.raw = rawReader{maxLen: rawMaxLen(exp)}
	cn.phase = phRaw
	cn.tcpKeepalive()
	cn.sess = cn.ls.shard.Open(cn)
	return true
}

// wsFrame handles one WebSocket frame.
func (cn *conn) wsFrame() bool {
	ev, n, err := cn.wsr.next(cn.in)
	if err != nil {
		cn.frameError(err)
		return false
	}
	if n == 0 {
		return cn.adopt() // a large frame is gathered outside gnet's buffer
	}
	switch ev.kind {
	case wsMessage:
		if cn.phase == phWS {
			cn.deliver(ev.payload, ev.op == ws.OpText)
		}
	case wsPing:
		if cn.phase == phWS { // no frame after our close frame
			cn.answerPing(ev.payload)
		}
	case wsClose:
		// [RFC6455 §5.5.1]: If an endpoint receives a Close frame and did
		// not previously send a Close frame, the endpoint MUST send a
		// Close frame in response.
		if cn.phase != phClosing {
			code := ev.code
			if code == ws.StatusNoStatusRcvd {
				code = ws.StatusNormalClosure
			}
			cn.out = appendWSClose(cn.buf(), code, "")
			cn.ls.markDirty(cn)
		}
		cn.in.Discard(n)
		cn.die(CloseWSClose, nil)
		return false
	}
	cn.in.Discard(n)
	return cn.phase != phDead
}

// deliver hands one WebSocket message (or batch) to the router.
func (cn *conn) deliver(p []byte, text bool) {
	if text != (cn.ser == proto.JSON) {
		cn.wsFail(ws.StatusUnsupportedData, "wrong frame type for the subprotocol", CloseProtocol, errWrongFrameType)
		return
	}
	if !cn.batched {
		cn.ls.shard.Receive(cn.sess, p)
		return
	}
	cn.deliverBatch(p)
}

// rawFrame handles one RawSocket frame.
func (cn *conn) rawFrame() bool {
	ev, n, err := cn.raw.next(cn.in)
	if err != nil {
		cn.frameError(err)
		return false
	}
	if n == 0 {
		return cn.adopt() // a large frame is gathered outside gnet's buffer
	}
	cn.rawEvent(ev)
	cn.in.Discard(n)
	return cn.phase == phRaw
}

// rawEvent handles one RawSocket frame; its payload is valid only during
// the call.
func (cn *conn) rawEvent(ev rawEvent) {
	switch ev.typ {
	case rawMessage:
		cn.ls.shard.Receive(cn.sess, ev.payload)
	case rawPing:
		// [RawSocket]: A Peer MUST answer a PING with exactly one PONG
		// carrying the same payload. (Bounded: pong.go.)
		cn.rawPings = true
		cn.answerPing(ev.payload)
	case rawPong:
		cn.rawPings = true
	}
}

// frame queues one WebSocket frame.
func (cn *conn) frame(op ws.OpCode, payload []byte) {
	if cn.phase == phGone {
		return
	}
	cn.out = appendWSFrame(cn.buf(), op, payload)
	cn.ls.markDirty(cn)
}

// Serializer implements route.Peer.
func (cn *conn) Serializer() proto.Serializer { return cn.ser }

// Transport implements route.Peer.
func (cn *conn) Transport() route.TransportInfo {
	ti := route.TransportInfo{RemoteAddr: cn.remote, TLS: cn.tls != nil}
	if cn.phase == phRaw || cn.raw.maxLen > 0 {
		ti.Type, ti.Protocol = "rawsocket", "rawsocket."+cn.ser.String()
	} else {
		ti.Type, ti.Protocol = "websocket", cn.ser.Subprotocol(cn.batched)
	}
	return ti
}

// Send implements route.Peer: it frames b into the output buffer, applying
// the backpressure policy first.
func (cn *conn) Send(b []byte, class route.Class) error {
	if cn.phase != phWS && cn.phase != phRaw {
		return route.ErrPeerClosed
	}
	if cn.maxOut > 0 && len(b) > cn.maxOut {
		// [RawSocket]: the Router MUST NOT send messages longer than the
		// length the client announced. The router decides what to send
		// instead: events are dropped, results become an ERROR, a WELCOME
		// is sent in its compact form, and a control message it cannot
		// shorten ends the session (route.Shard.sendMsg).
		return route.ErrPeerTooBig
	}
	backlog := cn.backlog()
	high, hard := cn.marks(backlog)
	if backlog > high && len(cn.out)+len(cn.ct) > 0 && !cn.full {
		// Part of the backlog is output of this loop iteration that the
		// socket has not been offered yet (a burst: a mailbox drain of
		// many calls, a fan-out): offer it now, so that the policy below
		// sees only what the peer has not taken. A fast peer must not
		// have invocations refused, events dropped or its session closed
		// for a burst the socket would have absorbed.
		cn.spill()
		if cn.phase == phDead {
			return route.ErrPeerClosed
		}
		backlog = cn.backlog()
	}
	if backlog > hard {
		cn.die(CloseSlowConsumer, errBacklogHard)
		return route.ErrPeerClosed
	}
	if backlog > high || len(b) >= largeOut && cn.ls.overBudget(len(b)) {
		switch class {
		case route.ClassEvent:
			if backlog <= high {
				cn.ls.e.outRefused.Add(1)
			}
			return route.ErrPeerSlow
		case route.ClassInvocation:
			if backlog <= high {
				cn.ls.e.outRefused.Add(1)
			}
			return route.ErrPeerBusy
		case route.ClassProgress:
			// A progressive RESULT ends its call (route: deliverResult)
			// once the backlog is half-way from high_water to hard_limit,
			// or when it is large and output is over budget: a stream is a
			// call its caller waits for, and a caller that reads, only
			// slower than its callee writes, absorbs a burst past
			// high_water that would end a download there; the half left
			// keeps room for final RESULTs (never refused) and the rest
			// before the session itself is closed at hard_limit.
			if backlog <= high || backlog > high+(hard-high)/2 || len(b) >= largeOut && cn.ls.overBudget(len(b)) {
				if backlog <= high {
					cn.ls.e.outRefused.Add(1)
				}
				return route.ErrPeerBusy
			}
		}
	}
	n0 := len(cn.out)
	out := cn.buf()
	switch {
	case cn.phase == phRaw:
		out = appendRawHeader(out, rawMessage, len(b))
		out = append(out, b...)
	case cn.batched:
		op := ws.OpBinary
		if cn.ser == proto.JSON {
			op = ws.OpText
		}
		out = appendWSHeader(out, op, batchedLen(cn.ser, len(b)))
		out = appendBatched(out, cn.ser, cn.batchSep(), b)
	default:
		op := ws.OpBinary
		if cn.ser == proto.JSON {
			op = ws.OpText
		}
		out = appendWSHeader(out, op, len(b))
		out = append(out, b...)
	}
	cn.out = out
	cn.ls.countPending(len(out) - n0)
	cn.ls.markDirty(cn)
	if len(b) >= largeOut && !cn.full {
		// Offered to the socket now: a fan-out of a large message would
		// otherwise hold every copy until the round's flush, and the
		// copies to subscribers that read would count in the budget
		// against the rest (budget.go).
		cn.spill()
	}
	return nil
}

// Backlog implements route.BacklogPeer: the dealer keeps the upper half
// of a callee's queue for the callers that hold no more than their share
// of it (route's calleeshare.go). As Send, it first offers the socket
// this round's output when the backlog looks past half the mark, so that
// a burst the peer would take (a mailbox drain of many calls to a callee
// that reads) does not count as a backlog. Field loads on the loop (one
// atomic load of the router-wide output while the connection holds more
// than 16 KiB), no allocation. Past the hard limit in force it closes the
// connection as a slow consumer, as Send does, and returns 0, 0.
func (cn *conn) Backlog() (queued, high int) {
	if cn.phase != phWS && cn.phase != phRaw {
		return 0, 0 // Send refuses anyway
	}
	backlog := cn.backlog()
	high, hard := cn.marks(backlog)
	if backlog > high/2 && len(cn.out)+len(cn.ct) > 0 && !cn.full {
		cn.spill()
		if cn.phase == phDead {
			return 0, 0
		}
		backlog = cn.backlog()
	}
	if backlog > hard {
		// Closed as Send closes it, whatever it was asked for: route
		// drops a large EVENT for a peer past its mark on this answer
		// without calling Send, so a peer past its hard limit (a RESULT,
		// never refused, took it there) that got only large events was
		// never closed, holding its backlog.
		cn.die(CloseSlowConsumer, errBacklogHard)
		return 0, 0
	}
	return backlog, high
}

var _ route.BacklogPeer = (*conn)(nil)

// MaxMessage implements route.LimitPeer: the longest message the peer
// accepts (its RawSocket maximum), 0 for none. On the loop.
func (cn *conn) MaxMessage() int { return cn.maxOut }

var _ route.LimitPeer = (*conn)(nil)

// Close implements route.Peer: the session is over. RawSocket closes after
// the output is flushed; WebSocket starts the closing handshake and waits
// (bounded) for the peer's close frame.
func (cn *conn) Close() {
	switch cn.phase {
	case phWS:
		cn.out = appendWSClose(cn.buf(), ws.StatusNormalClosure, "")
		cn.ls.markDirty(cn)
		cn.phase = phClosing
		cn.closeBy = cn.ls.e.now() + int64(2*time.Second)
		cn.closeLeft = cn.unsent()
		cn.setReason(CloseSession, nil)
	case phRaw:
		cn.die(CloseSession, nil)
	case phGone:
		if cn.batch != nil {
			cn.batch.ended = true // closed by the peer, its batch's rest routed meanwhile (batch.go)
		}
	}
}

// deadlines enforces the handshake, keepalive, idle and close deadlines.
// It runs from scan, on the loop through Execute, which flushes once after
// the whole scan: deadlines itself never writes, so no connection closes
// (and leaves ls.conns) while scan walks it.
func (cn *conn) deadlines(now int64) {
	o := &cn.ls.e.opts
	switch cn.phase {
	case phTLS, phDetect, phHTTP, phRawHS:
		if now-cn.opened > int64(o.HandshakeTimeout) {
			cn.die(CloseHandshakeTimeout, nil)
		}
	case phLane:
		cn.laneDeadlines(now)
	case phDead:
		if cn.lingering {
			cn.lingered(now, false)
		}
	case phClosing:
		if now > cn.closeBy {
			// Our close frame was not taken either. A peer that took, in
			// the handshake's 2 s, at least as much as is left is reading
			// it: closed with a FIN behind the rest, it gets our GOODBYE
			// and close frame (a reset lost them: 512 KiB of a 768 KiB
			// result read, the GOODBYE behind it). One that took less
			// is reset (flush.go: resetOnClose): an orphan of what is
			// left would cost the kernel more than the peer read.
			if left := cn.unsent(); cn.closeLeft-left < left {
				cn.abort = true
			}
			cn.die(CloseSession, nil) // the reason recorded by Close stays
		}
	case phWS, phRaw:
		if cn.pong != nil {
			cn.sendWaitingPong(now)
			if cn.phase == phDead {
				return
			}
		}
		idle := now - cn.lastRead
		if o.IdleTimeout > 0 && idle > int64(o.IdleTimeout) {
			cn.die(CloseIdle, nil)
			return
		}
		if o.PingInterval <= 0 {
			return
		}
		if cn.pingSent != 0 {
			if now-cn.pingSent > int64(o.PingTimeout) {
				if cn.readingBehindPing() {
					cn.pingSent = now // alive: its pong comes once it reaches the ping
					return
				}
				cn.die(CloseKeepalive, errPingUnanswered)
			}
			return
		}
		if idle > int64(o.PingInterval) {
			if cn.phase == phRaw && !cn.rawPings && !o.RawSocketPings {
				return // not one it is known to take (rawkeepalive.go)
			}
			cn.pingSent = now
			cn.closeLeft, cn.closeBy = cn.ackedBehind() // before the ping is queued
			cn.pingBuf()
			if cn.phase == phWS {
				cn.frame(ws.OpPing, nil)
			} else {
				cn.out = appendRawFrame(cn.buf(), rawPing, []byte(rawPingPayload))
				cn.ls.markDirty(cn)
			}
		}
	}
}
