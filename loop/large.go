package loop

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"
)

// Large frames: a frame whose payload is at least largeMin bytes and has
// not arrived whole is taken out of gnet's inbound buffer as it arrives and
// kept in fixed-size chunks from the loop's pool, then copied, once whole,
// into the loop's assembly buffer and handled there.
//
// Left in gnet's buffer, a large partial message cost far more than its
// bytes: gnet's ring buffer grows in steps, each step a new power-of-two
// array, and the arrays it outgrew wait in gnet's pools until two garbage
// collections have run (10 sessions each sending most of a 15 MiB message
// under a 64 MiB budget took RSS to 170 MB). In chunks, a partial message
// holds at most its bytes plus one chunk, nothing is copied while it
// grows, and what the budget counts (conn.account) is what is held. What
// the budget does not count is fixed: the loop's assembly buffer (the
// largest message a loop has handled lately, at most max_message, released
// by the scan when a second passes without one), the chunk pool
// (chunkPoolMax per loop) and gnet's read buffer (64 KiB per loop).
const (
	largeMin     = 64 << 10 // smallest frame payload taken out of gnet's buffer
	chunkSize    = 64 << 10
	chunkPoolMax = 64 // chunks a loop keeps pooled (4 MiB)
)

// bigFrame is a large frame being received (owned by the connection's
// loop).
type bigFrame struct {
	ws     bool
	h      wsHeader     // WebSocket: the frame's header (opcode, FIN, mask)
	typ    rawFrameType // RawSocket: the frame's type
	need   int          // payload length
	got    int          // payload bytes received
	chunks [][]byte     // the payload so far; each chunk has capacity chunkSize
}

// held returns the bytes of chunks the frame holds.
func (b *bigFrame) held() int { return len(b.chunks) * chunkSize }

// adopt takes a large partial frame at the front of the input, if there is
// one, out of gnet's buffer. It reports whether it did, or fails the
// connection on a framing error. It runs whenever a frame is incomplete,
// so it allocates only when it adopts one.
func (cn *conn) adopt() bool {
	var (
		h      wsHeader
		typ    rawFrameType
		length int
		ok     bool
		err    error
	)
	hdr := 0
	if cn.phase == phRaw {
		typ, length, ok, err = cn.raw.large(cn.in, largeMin)
		hdr = rawHeaderLen
	} else {
		err = cn.wsr.large(cn.in, largeMin, &h)
		ok, length, hdr = h.size > 0, h.length, h.size
	}
	if err != nil {
		cn.frameError(err)
		return false
	}
	if !ok {
		return false
	}
	cn.in.Discard(hdr)
	cn.big = &bigFrame{ws: cn.phase != phRaw, h: h, typ: typ, need: length}
	return true
}

// bigFeed moves the bytes buffered for the large frame into its chunks
// and, once it is whole, handles it. It reports whether to go on parsing.
// A whole frame behind a batch still being routed is queued behind it
// (batch.go: queueBehind), or its error kept for its turn.
func (cn *conn) bigFeed() bool {
	b := cn.big
	if take := min(cn.in.InboundBuffered(), b.need-b.got); take > 0 && !cn.bigTake(take) {
		return false
	}
	if b.got < b.need {
		return false
	}
	payload := cn.ls.assemble(b.chunks, b.need)
	cn.dropBig()
	if !b.ws {
		cn.rawEvent(rawEvent{typ: b.typ, payload: payload})
		return cn.phase == phRaw
	}
	ev, err := cn.wsr.frameDone(&b.h, payload)
	switch {
	case err != nil && cn.batch != nil:
		cn.batch.fail = err
		return false
	case err != nil:
		cn.frameError(err)
		return false
	case ev.kind != wsMessage || cn.phase != phWS:
	case cn.batch != nil:
		cn.queueBehind(ev.payload, ev.op == ws.OpText)
	default:
		cn.deliver(ev.payload, ev.op == ws.OpText)
	}
	return cn.phase == phWS || cn.phase == phClosing
}

// bigTake moves take buffered bytes of the large frame into its chunks.
func (cn *conn) bigTake(take int) bool {
	b := cn.big
	p, err := cn.in.Peek(take)
	if err != nil {
		return false
	}
	for len(p) > 0 {
		last := len(b.chunks) - 1
		if last < 0 || len(b.chunks[last]) == chunkSize {
			b.chunks = append(b.chunks, cn.ls.getChunk())
			last++
		}
		c := b.chunks[last]
		k := copy(c[len(c):chunkSize], p)
		if b.ws {
			ws.Cipher(c[len(c):len(c)+k], b.h.mask, b.got)
		}
		b.chunks[last] = c[:len(c)+k]
		b.got += k
		p = p[k:]
	}
	cn.in.Discard(take)
	return true
}

// dropBig returns the large frame's chunks to the pool.
func (cn *conn) dropBig() {
	if cn.big == nil {
		return
	}
	for _, c := range cn.big.chunks {
		cn.ls.putChunk(c)
	}
	cn.big = nil
}

// frameError fails the connection for an error of the framing layer.
func (cn *conn) frameError(err error) {
	var ce *wsCloseErr
	switch {
	case errors.As(err, &ce):
		r := CloseProtocol
		if ce == errWSTooBig {
			r = CloseTooBig
		}
		cn.wsFail(ce.code, ce.reason, r, ce)
	case err == errRawTooLarge:
		// [RawSocket]: the connection fails; the client is told why first
		// (there is no error frame: a WAMP ABORT, as WebSocket's close
		// frame 1009 says "message too big"). The close stays counted as
		// message_too_big, whatever the session's end records.
		cn.setReason(CloseTooBig, err)
		if cn.sess != nil && cn.phase == phRaw {
			cn.ls.shard.ProtocolViolation(cn.sess, cn.rawTooBigText())
		}
		cn.die(CloseTooBig, err)
	case err == errRawReservedBits || err == errRawReservedType || err == errRawBadLength:
		cn.die(CloseProtocol, err)
	default:
		cn.die(CloseReset, err)
	}
}

// rawTooBigText is the ABORT message for a RawSocket frame over the
// maximum, naming its length (read again from its prefix, still at the
// front of the input) and the maximum. Cold path: it allocates.
func (cn *conn) rawTooBigText() string {
	lim := cn.raw.limit()
	b, err := cn.in.Peek(rawHeaderLen)
	if err != nil || len(b) < rawHeaderLen {
		return "message too big: a RawSocket frame over the " + strconv.Itoa(lim) + "-byte maximum the router announced"
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if b[0]&0x08 != 0 {
		n = rawMaxLength
	}
	return "message too big: a RawSocket frame of " + strconv.Itoa(n) + " bytes, over the " + strconv.Itoa(lim) + "-byte maximum the router announced"
}

func (ls *loopState) getChunk() []byte {
	ls.bigUsed = true
	if n := len(ls.chunks); n > 0 {
		c := ls.chunks[n-1]
		ls.chunks[n-1] = nil
		ls.chunks = ls.chunks[:n-1]
		return c
	}
	return make([]byte, 0, chunkSize)
}

func (ls *loopState) putChunk(c []byte) {
	if len(ls.chunks) < chunkPoolMax {
		ls.chunks = append(ls.chunks, c[:0])
	}
}

// assemble copies a large frame's chunks into the loop's assembly buffer
// and returns its first n bytes, valid until the next assemble.
func (ls *loopState) assemble(chunks [][]byte, n int) []byte {
	if cap(ls.bigBuf) < n {
		ls.bigBuf = make([]byte, n)
	}
	buf := ls.bigBuf[:n]
	off := 0
	for _, c := range chunks {
		off += copy(buf[off:], c)
	}
	ls.bigUsed = true
	return buf
}

// trimLarge releases the assembly buffer and the chunk pool when no large
// frame was handled since the last scan.
func (ls *loopState) trimLarge() {
	if !ls.bigUsed {
		ls.bigBuf = nil
		clear(ls.chunks)
		ls.chunks = ls.chunks[:0]
	}
	ls.bigUsed = false
}
