package loop

import (
	"errors"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

type phase uint8

const (
	phDetect  phase = iota // waiting for the first byte
	phHTTP                 // reading the HTTP request
	phRawHS                // reading the RawSocket handshake
	phWS                   // WebSocket frames
	phRaw                  // RawSocket frames
	phClosing              // WebSocket close frame sent; waiting for the peer's
	phDead                 // dying: closed after its pending output is flushed
	phGone                 // closed by gnet (conn.closed ran): inert
)

// conn is one client connection. It implements route.Peer. All fields are
// owned by the connection's event loop.
type conn struct {
	c      gnet.Conn
	ls     *loopState
	ln     *listenerState
	remote string
	tls    bool
	origin *tlsOrigin // TLS connections: the bridge's side
	idx    int

	phase     phase
	overLimit bool
	ser       proto.Serializer
	batched   bool
	wsr       wsReader
	raw       rawReader
	maxOut    int // longest message the peer accepts (RawSocket handshake); 0 = no limit
	sess      *route.Session

	out   []byte // framed output not yet written (pooled; nil when idle)
	dirty bool
	full  bool // spill found the socket full in this loop iteration (cleared by flush)

	opened   int64 // coarse unix ns
	lastRead int64
	pingSent int64 // 0 = no ping outstanding
	closeBy  int64 // phClosing: deadline for the peer's close frame
	reason   string
	held     int64 // bytes of partial input counted in Engine.inbound (budget.go)
	outHeld  int64 // bytes of queued output counted in Engine.outbound
}

// traffic parses everything buffered. gnet does not call OnTraffic again
// for bytes already buffered, so it stops only when a frame is incomplete
// or the connection is done.
func (cn *conn) traffic() {
	cn.lastRead = cn.ls.e.now()
	cn.pingSent = 0
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
			more = cn.wsFrame()
		case phRaw:
			more = cn.rawFrame()
		default:
			return
		}
		if !more {
			return
		}
	}
}

func (cn *conn) detect() bool {
	b, err := cn.c.Peek(1)
	if err != nil {
		return false
	}
	if b[0] == rawMagic {
		cn.phase = phRawHS
		if cn.ln.cfg.Transport == WebSocketOnly {
			cn.die("RawSocket handshake on a WebSocket-only listener")
			return false
		}
	} else {
		cn.phase = phHTTP
		if cn.ln.cfg.Transport == RawSocketOnly {
			cn.die("HTTP request on a RawSocket-only listener")
			return false
		}
	}
	return true
}

func (cn *conn) http() bool {
	o := cn.ls.e.http
	o.overLimit = cn.overLimit
	res, n, err := handleHTTP(cn.c, &o)
	if err != nil {
		cn.die("http: " + err.Error())
		return false
	}
	switch res.kind {
	case httpNeedMore:
		return false
	case httpRespond:
		cn.writeNow(res.resp)
		cn.c.Discard(n)
		reason := "http " + itoa(res.status)
		if res.reason != nil {
			reason += ": " + res.reason.Error()
		}
		cn.die(reason)
		return false
	}
	cn.writeNow(res.resp)
	cn.c.Discard(n)
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
		cn.die("rawsocket: maximum connection count reached")
		return false
	}
	hs, n, err := readRawHandshake(cn.c)
	if n == 0 && err == nil {
		return false
	}
	if err != nil {
		var hsErr rawHSError
		if errors.As(err, &hsErr) {
			r := hsErr.reply()
			cn.writeNow(r[:])
		}
		cn.die("rawsocket handshake: " + err.Error())
		return false
	}
	cn.c.Discard(n)
	exp := rawExpFor(cn.ls.e.opts.MaxMessage)
	reply := rawHandshakeReply(hs.ser, exp)
	cn.writeNow(reply[:])
	cn.ser = hs.ser
	cn.maxOut = hs.maxRecv
	cn.raw = rawReader{maxLen: rawMaxLen(exp)}
	cn.phase = phRaw
	cn.sess = cn.ls.shard.Open(cn)
	return true
}

// wsFrame handles one WebSocket frame.
func (cn *conn) wsFrame() bool {
	ev, n, err := cn.wsr.next(cn.c)
	if err != nil {
		var ce *wsCloseErr
		if errors.As(err, &ce) {
			cn.wsFail(ce.code, ce.reason)
		} else {
			cn.die("websocket: " + err.Error())
		}
		return false
	}
	if n == 0 {
		return false
	}
	switch ev.kind {
	case wsMessage:
		if cn.phase == phWS {
			cn.deliver(ev.payload, ev.op == ws.OpText)
		}
	case wsPing:
		cn.frame(ws.OpPong, ev.payload)
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
		cn.c.Discard(n)
		cn.die("websocket close " + itoa(int(ev.code)))
		return false
	}
	cn.c.Discard(n)
	return cn.phase != phDead
}

// deliver hands one WebSocket message (or batch) to the router.
func (cn *conn) deliver(p []byte, text bool) {
	if text != (cn.ser == proto.JSON) {
		cn.wsFail(ws.StatusUnsupportedData, "wrong frame type for the subprotocol")
		return
	}
	if !cn.batched {
		cn.ls.shard.Receive(cn.sess, p)
		return
	}
	// The whole batch is checked before any of its messages is routed, so
	// a malformed batch has no partial effect.
	err := splitBatch(p, cn.ser, func(msg []byte) error {
		if cn.phase != phWS {
			return errBatchStop // the session ended within the batch
		}
		cn.ls.shard.Receive(cn.sess, msg)
		return nil
	})
	if err != nil && err != errBatchStop {
		cn.wsFail(ws.StatusProtocolError, "bad batch")
	}
}

// errBatchStop stops routing the rest of a batch once the session ended.
var errBatchStop = errors.New("loop: batch: session ended")

// rawFrame handles one RawSocket frame.
func (cn *conn) rawFrame() bool {
	ev, n, err := cn.raw.next(cn.c)
	if err != nil {
		cn.die("rawsocket: " + err.Error())
		return false
	}
	if n == 0 {
		return false
	}
	switch ev.typ {
	case rawMessage:
		cn.ls.shard.Receive(cn.sess, ev.payload)
	case rawPing:
		// [RawSocket]: A Peer MUST answer a PING with exactly one PONG
		// carrying the same payload.
		cn.out = appendRawFrame(cn.buf(), rawPong, ev.payload)
		cn.ls.markDirty(cn)
	}
	cn.c.Discard(n)
	return cn.phase == phRaw
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
	ti := route.TransportInfo{RemoteAddr: cn.remote, TLS: cn.tls}
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
	backlog := cn.c.OutboundBuffered() + len(cn.out)
	high, hard := cn.marks(backlog)
	if backlog > high && len(cn.out) > 0 && !cn.full {
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
		backlog = cn.c.OutboundBuffered() + len(cn.out)
	}
	if backlog > hard {
		cn.die("slow consumer: outbound backlog over " + itoa(hard) + " bytes")
		return route.ErrPeerClosed
	}
	if backlog > high {
		switch class {
		case route.ClassEvent:
			return route.ErrPeerSlow
		case route.ClassInvocation:
			return route.ErrPeerBusy
		}
	}
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
		out = appendBatched(out, cn.ser, b)
	default:
		op := ws.OpBinary
		if cn.ser == proto.JSON {
			op = ws.OpText
		}
		out = appendWSHeader(out, op, len(b))
		out = append(out, b...)
	}
	cn.out = out
	cn.ls.markDirty(cn)
	return nil
}

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
		if cn.reason == "" {
			cn.reason = "session closed"
		}
	case phRaw:
		cn.die("session closed")
	}
}

// wsFail sends a close frame with a status and closes.
func (cn *conn) wsFail(code ws.StatusCode, reason string) {
	if cn.phase == phWS || cn.phase == phClosing {
		cn.out = appendWSClose(cn.buf(), code, reason)
	}
	cn.die("websocket " + itoa(int(code)) + ": " + reason)
}

// die marks the connection for closing after its output is flushed. The
// first reason given is the one logged.
func (cn *conn) die(reason string) {
	if cn.phase == phGone {
		return
	}
	if cn.reason == "" || cn.reason == "session closed" {
		cn.reason = reason
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

// closed runs in OnClose: the connection is gone; the session (if any)
// leaves its realm. It may run inside a flush, from the write that failed
// (flush.go): it never writes or flushes, and frees only the connection's
// own state. Outside any entry point of ours (gnet closed the connection on
// its own) it queues a flush for what the session's departure produced for
// other connections.
func (cn *conn) closed(err error) {
	if cn.phase == phGone {
		return
	}
	prev := cn.phase
	cn.phase = phGone
	cn.release()
	cn.releaseOut()
	if cn.out != nil {
		cn.ls.putBuf(cn.out)
		cn.out = nil
	}
	cn.ls.remove(cn)
	if cn.origin != nil {
		cn.origin.loopClosed() // its bridge releases the connection count
	} else {
		cn.ln.conns.Add(-1)
		cn.ls.e.fds.Add(-1)
	}
	reason := cn.reason
	if reason == "" {
		reason = "peer closed"
		if err != nil {
			reason = err.Error()
		}
	}
	var sid uint64
	if cn.sess != nil {
		sid = cn.sess.ID()
		cn.ls.shard.Detach(cn.sess)
		cn.sess = nil
		if cn.ls.depth == 0 && len(cn.ls.dirty) > 0 {
			cn.ls.queueFlush()
		}
	}
	cn.ls.e.log.Debug("connection closed", "remote", cn.remote, "session", sid, "reason", reason, "phase", int(prev))
}

// deadlines enforces the handshake, keepalive, idle and close deadlines.
// It runs from scan, on the loop through Execute, which flushes once after
// the whole scan: deadlines itself never writes, so no connection closes
// (and leaves ls.conns) while scan walks it.
func (cn *conn) deadlines(now int64) {
	o := &cn.ls.e.opts
	switch cn.phase {
	case phDetect, phHTTP, phRawHS:
		if now-cn.opened > int64(o.HandshakeTimeout) {
			cn.die("handshake timeout")
		}
	case phClosing:
		if now > cn.closeBy {
			cn.die(cn.reason)
		}
	case phWS, phRaw:
		idle := now - cn.lastRead
		if o.IdleTimeout > 0 && idle > int64(o.IdleTimeout) {
			cn.die("idle timeout")
			return
		}
		if o.PingInterval <= 0 {
			return
		}
		if cn.pingSent != 0 {
			if now-cn.pingSent > int64(o.PingTimeout) {
				cn.die("keepalive: no answer to ping")
			}
			return
		}
		if idle > int64(o.PingInterval) {
			cn.pingSent = now
			if cn.phase == phWS {
				cn.frame(ws.OpPing, nil)
			} else {
				cn.out = appendRawFrame(cn.buf(), rawPing, nil)
				cn.ls.markDirty(cn)
			}
		}
	}
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
