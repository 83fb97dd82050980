package fwd

import (
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

type phase uint8

const (
	phDetect phase = iota // first byte decides: 0x7f RawSocket, else HTTP
	phHTTP
	phRawHS
	phWS
	phRaw
)

// conn is one client connection. Owned by its loop, except dead (read by
// other loops that hold a pointer to a caller or callee).
type conn struct {
	c     gnet.Conn
	ls    *loopState
	phase phase
	ws    bool
	ser   proto.Serializer
	sid   uint64
	out   []byte // framed output not yet written
	dirty bool
	dead  bool        // closing: no more input, close after the flush
	gone  atomic.Bool // OnClose ran
	frag  []byte      // WebSocket message being reassembled

	// Callee state: invocations in flight, owned by this conn's loop.
	pending map[uint64]pending
	regs    []*registration
	subs    []*subscription
}

type pending struct {
	caller *conn
	req    uint64
}

// traffic handles everything buffered on the connection.
func (cn *conn) traffic() {
	buf, _ := cn.c.Peek(-1)
	used := 0
	for !cn.dead {
		n := cn.step(buf[used:])
		if n == 0 {
			break
		}
		used += n
	}
	if cn.dead {
		used = len(buf)
	}
	if used > 0 { // gnet's Discard(0) would drop everything buffered
		cn.c.Discard(used)
	}
}

// step consumes one unit (handshake or frame) from b and returns its
// length, or 0 when b does not hold a whole one.
func (cn *conn) step(b []byte) int {
	switch cn.phase {
	case phDetect:
		if len(b) == 0 {
			return 0
		}
		if b[0] == wire.RawMagic {
			cn.phase = phRawHS
		} else {
			cn.phase = phHTTP
		}
		return cn.step(b)
	case phHTTP:
		req, n, err := wire.ParseUpgradeRequest(b)
		if n == 0 {
			return 0
		}
		ser, ok := wire.ChooseSubprotocol(req.Protocols)
		if err != nil || !ok {
			cn.raw([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
			cn.die("http: bad upgrade request")
			return n
		}
		cn.ser, cn.ws, cn.phase = ser, true, phWS
		cn.out = wire.AppendUpgradeResponse(cn.buf(), req.Key, ser)
		cn.ls.markDirty(cn)
		return n
	case phRawHS:
		if len(b) < 4 {
			return 0
		}
		ser := proto.Serializer(b[1] & 0x0f)
		if b[0] != wire.RawMagic || !ser.Valid() {
			cn.raw([]byte{wire.RawMagic, 0x10, 0, 0}) // error 1: serializer unsupported
			cn.die("rawsocket: bad handshake")
			return 4
		}
		cn.ser, cn.phase = ser, phRaw
		cn.raw([]byte{wire.RawMagic, 0xf0 | byte(ser), 0, 0}) // we accept 16 MiB
		return 4
	case phWS:
		return cn.wsFrame(b)
	case phRaw:
		typ, n, ok, err := wire.ParseRawHeader(b)
		if err != nil {
			cn.die("rawsocket: bad frame header")
			return len(b)
		}
		if !ok || len(b) < 4+n {
			return 0
		}
		p := b[4 : 4+n]
		switch typ {
		case wire.RawMessage:
			cn.message(p)
		case wire.RawPing:
			cn.out = wire.AppendRawHeader(cn.buf(), wire.RawPong, len(p))
			cn.out = append(cn.out, p...)
			cn.ls.markDirty(cn)
		}
		return 4 + n
	}
	return 0
}

func (cn *conn) wsFrame(b []byte) int {
	h, hn, err := wire.ParseFrameHeader(b)
	if err != nil || (hn > 0 && !h.Masked) {
		cn.die("websocket: bad or unmasked frame")
		return len(b)
	}
	if hn == 0 || len(b) < hn+h.Len {
		return 0
	}
	p := b[hn : hn+h.Len]
	wire.MaskBytes(p, h.Mask, 0) // in place: the bytes are discarded after
	switch h.Op {
	case wire.OpText, wire.OpBinary:
		if h.Fin {
			cn.message(p)
		} else {
			cn.frag = append(cn.frag[:0], p...)
		}
	case wire.OpCont:
		cn.frag = append(cn.frag, p...)
		if h.Fin {
			cn.message(cn.frag)
			cn.frag = nil
		}
	case wire.OpPing:
		cn.out = wire.AppendFrameHeader(cn.buf(), wire.OpPong, len(p), nil)
		cn.out = append(cn.out, p...)
		cn.ls.markDirty(cn)
	case wire.OpClose:
		cn.out = wire.AppendFrameHeader(cn.buf(), wire.OpClose, 0, nil)
		cn.ls.markDirty(cn)
		cn.die("websocket: close frame")
	}
	return hn + h.Len
}

// buf returns the output buffer, taking one from the pool if needed.
func (cn *conn) buf() []byte {
	if cn.out == nil {
		cn.out = cn.ls.getBuf()
	}
	return cn.out
}

// raw queues unframed bytes (handshake replies).
func (cn *conn) raw(b []byte) {
	cn.out = append(cn.buf(), b...)
	cn.ls.markDirty(cn)
}

// sendFramed queues one WAMP message, framed for the transport.
func (cn *conn) sendFramed(msg []byte) {
	if cn.dead {
		return
	}
	out := cn.buf()
	if cn.ws {
		op := byte(wire.OpBinary)
		if cn.ser == proto.JSON {
			op = wire.OpText
		}
		out = wire.AppendFrameHeader(out, op, len(msg), nil)
	} else {
		out = wire.AppendRawHeader(out, wire.RawMessage, len(msg))
	}
	cn.out = append(out, msg...)
	cn.ls.markDirty(cn)
}

// sendEvent queues an EVENT unless the connection is backed up.
func (cn *conn) sendEvent(msg []byte) {
	if cn.dead {
		return
	}
	if cn.c.OutboundBuffered()+len(cn.out) > cn.ls.s.opts.HighWater {
		cn.ls.s.stats.dropped.Add(1)
		return
	}
	cn.ls.s.stats.events.Add(1)
	cn.sendFramed(msg)
}

// flush writes the pending output.
func (cn *conn) flush() {
	if len(cn.out) > 0 && !cn.gone.Load() {
		cn.c.Write(cn.out)
		cn.ls.s.stats.writes.Add(1)
	}
	if cap(cn.out) == outBufCap {
		cn.ls.putBuf(cn.out)
	}
	cn.out = nil
	if cn.dead && !cn.gone.Load() {
		cn.c.Close()
	}
}

// die stops reading; the connection closes after its output is flushed.
// The reason is counted (Server.Closes).
func (cn *conn) die(reason string) {
	if !cn.dead {
		cn.dead = true
		cn.ls.markDirty(cn)
		cn.ls.s.countClose(reason)
	}
}

// closed runs on the loop when the connection is gone; err is gnet's
// (nil when the forwarder closed it).
func (cn *conn) closed(err error) {
	if !cn.dead && err != nil {
		cn.ls.s.countClose("socket: " + err.Error())
	}
	cn.dead = true
	cn.gone.Store(true)
	s := cn.ls.s
	s.tables.drop(cn)
	for _, p := range cn.pending {
		cn.ls.failInvocation(p.caller, p.req)
	}
	cn.pending = nil
	if cn.out != nil && cap(cn.out) == outBufCap {
		cn.ls.putBuf(cn.out)
	}
	cn.out = nil
}

func (cn *conn) addPending(inv uint64, p pending) {
	if cn.pending == nil {
		cn.pending = make(map[uint64]pending)
	}
	cn.pending[inv] = p
}
