package loop

import (
	"encoding/binary"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// WebSocket framing, server side (RFC 6455 §5). The parser is our own
// because gobwas/ws reads from a blocking io.Reader; only its constants and
// its masking kernel (ws.Cipher) are used here.
//
// A client frame on the wire:
//
//	FIN RSV1-3 opcode(4) | MASK len7 | [len16 | len64] | mask key(4) | payload

const (
	// defaultWSMaxMessage is the message limit of a wsReader whose
	// maxMessage is not set.
	defaultWSMaxMessage = 16 << 20

	// wsMaxClientHeader is the longest client frame header: 2 fixed octets,
	// 8 octets of extended length and the 4-octet masking key.
	wsMaxClientHeader = 14

	// wsMaxServerHeader is the longest header appendWSHeader writes (server
	// frames are not masked).
	wsMaxServerHeader = 10

	// [RFC6455 §5.5]: All control frames MUST have a payload length of 125
	// bytes or less and MUST NOT be fragmented.
	wsMaxControlPayload = 125

	// wsFragMinCap is the smallest reassembly buffer allocated for a
	// fragmented message.
	wsFragMinCap = 512
)

// wsEventKind says what a wsEvent carries.
type wsEventKind uint8

const (
	// wsNone: nothing to handle. With n > 0 a non-final fragment was copied
	// into the reassembly buffer; with n == 0 the reader needs more bytes.
	wsNone wsEventKind = iota
	// wsMessage: a complete text or binary message.
	wsMessage
	// wsPing: the peer wants a pong with the same payload.
	wsPing
	// wsPong: an answer to our ping (or an unsolicited heartbeat).
	wsPong
	// wsClose: the peer started or answered the closing handshake.
	wsClose
)

// wsEvent is one thing read from a WebSocket connection.
//
// payload aliases the inbound buffer, and is valid only until the caller
// Discards the n bytes next returned (or the buffer is refilled), except for
// a reassembled fragmented message: then payload is a buffer the reader
// allocated and handed over, which the caller owns and may keep.
type wsEvent struct {
	kind wsEventKind
	// op is ws.OpText or ws.OpBinary for wsMessage, else the control opcode.
	op ws.OpCode
	// payload is the message, ping or pong payload, or the close reason
	// (UTF-8, possibly empty).
	payload []byte
	// code is the close status for wsClose: ws.StatusNoStatusRcvd (1005)
	// when the close frame had no body.
	code ws.StatusCode
}

// wsCloseErr is a WebSocket protocol violation by the peer. The connection
// must be failed: send appendWSClose(dst, e.code, e.reason) and close. The
// package's values are sentinels, compared with == or errors.Is, and are
// returned without allocating.
type wsCloseErr struct {
	code   ws.StatusCode // the close status to send
	reason string        // the close reason to send (short, ASCII)
	msg    string        // Error text: "loop: websocket: " + reason
}

// Error implements error.
func (e *wsCloseErr) Error() string { return e.msg }

func newWSCloseErr(code ws.StatusCode, reason string) *wsCloseErr {
	return &wsCloseErr{code: code, reason: reason, msg: "loop: websocket: " + reason}
}

// Protocol violations and their close codes (RFC 6455 §7.4.1).
var (
	errWSUnmasked               = newWSCloseErr(ws.StatusProtocolError, "client frame not masked")
	errWSReservedBits           = newWSCloseErr(ws.StatusProtocolError, "reserved bits set")
	errWSReservedOp             = newWSCloseErr(ws.StatusProtocolError, "reserved opcode")
	errWSControlTooLong         = newWSCloseErr(ws.StatusProtocolError, "control frame payload over 125 bytes")
	errWSControlFragmented      = newWSCloseErr(ws.StatusProtocolError, "fragmented control frame")
	errWSUnexpectedContinuation = newWSCloseErr(ws.StatusProtocolError, "continuation frame outside a fragmented message")
	errWSExpectedContinuation   = newWSCloseErr(ws.StatusProtocolError, "new data frame inside a fragmented message")
	errWSCloseLength            = newWSCloseErr(ws.StatusProtocolError, "close frame payload of 1 byte")
	errWSCloseCode              = newWSCloseErr(ws.StatusProtocolError, "invalid close status code")
	errWSCloseReason            = newWSCloseErr(ws.StatusInvalidFramePayloadData, "close reason is not UTF-8")
	errWSInvalidUTF8            = newWSCloseErr(ws.StatusInvalidFramePayloadData, "text message is not UTF-8")
	errWSTooBig                 = newWSCloseErr(ws.StatusMessageTooBig, "message too big")
)

// wsReader parses the frames a client sends, one connection's worth of
// state: the message limit and a fragmented message in progress.
//
// It is owned by the connection's loop (or its TLS goroutine) and is not
// safe for concurrent use. An idle reader holds no buffer: the reassembly
// buffer exists only while a fragmented message is partial, and is handed to
// the caller with the final fragment.
type wsReader struct {
	// maxMessage bounds a message's payload, whole or reassembled, in bytes.
	// Static after construction; <= 0 means defaultWSMaxMessage.
	maxMessage int

	// fragOp is ws.OpText or ws.OpBinary while a fragmented message is
	// partial and ws.OpContinuation (0) otherwise.
	fragOp ws.OpCode
	// frag holds the payload received so far of the partial message. It is
	// nil when no message is partial (and may be nil while one is, if its
	// fragments so far were empty). Its capacity never exceeds the limit.
	frag []byte
}

// limit returns the message limit, applying the default.
func (r *wsReader) limit() int {
	if r.maxMessage <= 0 {
		return defaultWSMaxMessage
	}
	return r.maxMessage
}

// partial reports whether a fragmented message is in progress.
func (r *wsReader) partial() bool { return r.fragOp != ws.OpContinuation }

// wsHeader is a decoded client frame header.
type wsHeader struct {
	fin    bool
	op     ws.OpCode
	mask   [4]byte
	size   int // header length in octets, masking key included; 0 = need more
	length int // payload length, already checked against the limit
}

// next reads at most one frame from in.
//
// It returns n == 0 and a nil error when in does not yet hold a whole frame:
// nothing was consumed or modified, call again when more bytes arrive. The
// declared length is checked against the limit as soon as the length octets
// are buffered, before waiting for the payload and before allocating, so a
// frame that is too big fails with errWSTooBig (close 1009) at once.
//
// Otherwise next unmasks the frame's payload in place and returns the event
// and n, the frame's size: the caller handles ev (ev.payload aliases in) and
// then calls in.Discard(n), and must Discard before calling next again (the
// payload is unmasked exactly once). A non-final fragment returns a wsNone
// event with n > 0; its payload was copied into the reassembly buffer.
//
// A *wsCloseErr means the peer violated RFC 6455: send the close frame it
// describes and close the connection; the reader must not be used again.
// Other errors come from in itself.
//
// next allocates only to grow the reassembly buffer of a fragmented message.
func (r *wsReader) next(in inbound) (ev wsEvent, n int, err error) {
	// h is filled through a pointer, and a one-frame message is handled
	// inline, because returned structs were stored field by field and
	// reloaded as 16-byte words (a store-forwarding stall): the two changes
	// took a 64-byte frame from 60 to 22 ns.
	var h wsHeader
	if err = r.header(in, &h); err != nil || h.size == 0 {
		return wsEvent{}, 0, err
	}
	n = h.size + h.length
	if in.InboundBuffered() < n {
		return wsEvent{}, 0, nil
	}
	frame, err := in.Peek(n)
	if err != nil {
		return wsEvent{}, 0, shortIsNil(err)
	}
	payload := frame[h.size:n:n]
	ws.Cipher(payload, h.mask, 0)
	switch {
	case h.op.IsControl():
		ev, err = wsControl(h.op, payload)
	case h.fin && !r.partial():
		// The common case: a message in one frame, passed on zero-copy.
		// [RFC6455 §8.1]: When an endpoint is to interpret a byte stream
		// as UTF-8 but finds that the byte stream is not, in fact, a valid
		// UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_.
		if h.op == ws.OpText && !utf8.Valid(payload) {
			return wsEvent{}, 0, errWSInvalidUTF8
		}
		return wsEvent{kind: wsMessage, op: h.op, payload: payload}, n, nil
	default:
		ev, err = r.fragment(h.op, h.fin, payload)
	}
	if err != nil {
		return wsEvent{}, 0, err
	}
	return ev, n, nil
}

// large reports, in h, a data frame at the front of in whose payload is at
// least min bytes long and not wholly buffered yet: the caller may take
// it out of the inbound buffer (Discard h.size, then the payload as it
// arrives, unmasking it with ws.Cipher at its offset) and hand the whole
// payload to frameDone. h.size == 0 otherwise. The frame's header has
// passed every check next applies, the limits included.
func (r *wsReader) large(in inbound, min int, h *wsHeader) error {
	if err := r.header(in, h); err != nil || h.size == 0 {
		return err
	}
	if h.op.IsControl() || h.length < min || in.InboundBuffered() >= h.size+h.length {
		h.size = 0
	}
	return nil
}

// frameDone is the end of next for a data frame whose payload (unmasked)
// was gathered outside the inbound buffer (see large): a whole message, or
// a fragment added to the message being reassembled. payload is only read
// during the call.
func (r *wsReader) frameDone(h *wsHeader, payload []byte) (wsEvent, error) {
	if h.fin && !r.partial() {
		if h.op == ws.OpText && !utf8.Valid(payload) {
			return wsEvent{}, errWSInvalidUTF8
		}
		return wsEvent{kind: wsMessage, op: h.op, payload: payload}, nil
	}
	return r.fragment(h.op, h.fin, payload)
}

// header decodes and checks the frame header at the front of in into h,
// peeking no more than the header needs. h.size == 0 with a nil error means
// "need more".
func (r *wsReader) header(in inbound, h *wsHeader) error {
	b, err := in.Peek(2)
	if err != nil {
		return shortIsNil(err)
	}
	b0, b1 := b[0], b[1]
	if err := r.check(b0, b1); err != nil {
		return err
	}
	h.fin = b0&0x80 != 0
	h.op = ws.OpCode(b0 & 0x0f)

	// [RFC6455 §5.2]: Payload length: 7 bits, 7+16 bits, or 7+64 bits. If
	// 0-125, that is the payload length. If 126, the following 2 bytes
	// interpreted as a 16-bit unsigned integer are the payload length. If
	// 127, the following 8 bytes interpreted as a 64-bit unsigned integer
	// (the most significant bit MUST be 0) are the payload length.
	ext := 0
	switch b1 & 0x7f {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if ext > 0 {
		if b, err = in.Peek(2 + ext); err != nil {
			return shortIsNil(err)
		}
	}
	length := uint64(b1 & 0x7f)
	switch ext {
	case 2:
		length = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 8:
		length = binary.BigEndian.Uint64(b[2:10])
	}
	// Bound a data frame's length, and a fragmented message's running
	// total, before waiting or allocating. A 64-bit length with the most
	// significant bit set is above any limit, so it is reported as too big
	// (1009) rather than as a protocol error (1002). Control frames, which
	// may arrive between fragments, were bounded to 125 octets by check and
	// do not count towards the message.
	if room := r.limit() - len(r.frag); length > uint64(room) && !h.op.IsControl() {
		return errWSTooBig
	}

	size := 2 + ext + 4
	if b, err = in.Peek(size); err != nil {
		return shortIsNil(err)
	}
	copy(h.mask[:], b[2+ext:])
	h.size, h.length = size, int(length)
	return nil
}

// check applies the rules that the first two header octets decide.
func (r *wsReader) check(b0, b1 byte) error {
	// [RFC6455 §5.2]: RSV1, RSV2, RSV3: MUST be 0 unless an extension is
	// negotiated that defines meanings for non-zero values. (None is.)
	if b0&0x70 != 0 {
		return errWSReservedBits
	}
	switch op := ws.OpCode(b0 & 0x0f); op {
	case ws.OpContinuation:
		// [RFC6455 §5.4]: a fragmented message consists of a single frame
		// with the FIN bit clear and an opcode other than 0, followed by
		// zero or more frames with the FIN bit clear and the opcode set to
		// 0, and terminated by a single frame with the FIN bit set and an
		// opcode of 0.
		if !r.partial() {
			return errWSUnexpectedContinuation
		}
	case ws.OpText, ws.OpBinary:
		// [RFC6455 §5.4]: The fragments of one message MUST NOT be
		// interleaved between the fragments of another message.
		if r.partial() {
			return errWSExpectedContinuation
		}
	case ws.OpClose, ws.OpPing, ws.OpPong:
		// [RFC6455 §5.5]: All control frames MUST have a payload length of
		// 125 bytes or less and MUST NOT be fragmented.
		if b0&0x80 == 0 {
			return errWSControlFragmented
		}
		if b1&0x7f > wsMaxControlPayload {
			return errWSControlTooLong
		}
	default:
		// [RFC6455 §5.2]: %x3-7 are reserved for further non-control
		// frames; %xB-F are reserved for further control frames.
		return errWSReservedOp
	}
	// [RFC6455 §5.1]: The server MUST close the connection upon receiving a
	// frame that is not masked. In this case, a server MAY send a Close
	// frame with a status code of 1002 (protocol error).
	if b1&0x80 == 0 {
		return errWSUnmasked
	}
	return nil
}

// fragment handles an unmasked fragment of a fragmented message: the first
// (text or binary, FIN clear) or a continuation.
func (r *wsReader) fragment(op ws.OpCode, fin bool, payload []byte) (wsEvent, error) {
	if !r.partial() {
		r.fragOp = op
	}
	r.appendFrag(payload)
	if !fin {
		return wsEvent{}, nil
	}
	msg, op := r.frag, r.fragOp
	r.frag, r.fragOp = nil, ws.OpContinuation
	// [RFC6455 §8.1] (above), checked on the whole message: a fragment
	// boundary may split a code point.
	if op == ws.OpText && !utf8.Valid(msg) {
		return wsEvent{}, errWSInvalidUTF8
	}
	return wsEvent{kind: wsMessage, op: op, payload: msg}, nil
}

// appendFrag copies p into the reassembly buffer, growing it by doubling but
// never past the limit (header checked len(frag)+len(p) against it).
func (r *wsReader) appendFrag(p []byte) {
	if need := len(r.frag) + len(p); need > cap(r.frag) {
		c := min(max(2*cap(r.frag), need, wsFragMinCap), r.limit())
		nb := make([]byte, len(r.frag), c)
		copy(nb, r.frag)
		r.frag = nb
	}
	r.frag = append(r.frag, p...)
}

// wsControl turns an unmasked control frame into its event.
func wsControl(op ws.OpCode, p []byte) (wsEvent, error) {
	switch op {
	case ws.OpPing:
		return wsEvent{kind: wsPing, op: op, payload: p}, nil
	case ws.OpPong:
		return wsEvent{kind: wsPong, op: op, payload: p}, nil
	}
	return wsParseClose(p)
}

// wsParseClose decodes and checks a close frame's body.
func wsParseClose(p []byte) (wsEvent, error) {
	ev := wsEvent{kind: wsClose, op: ws.OpClose, code: ws.StatusNoStatusRcvd}
	// [RFC6455 §5.5.1]: If there is a body, the first two bytes of the body
	// MUST be a 2-byte unsigned integer (in network byte order)
	// representing a status code with value /code/ defined in Section 7.4.
	// Following the 2-byte integer, the body MAY contain UTF-8-encoded data
	// with value /reason/.
	switch len(p) {
	case 0:
		return ev, nil
	case 1:
		return wsEvent{}, errWSCloseLength
	}
	ev.code = ws.StatusCode(binary.BigEndian.Uint16(p))
	if !wsValidCloseCode(ev.code) {
		return wsEvent{}, errWSCloseCode
	}
	ev.payload = p[2:]
	if !utf8.Valid(ev.payload) {
		return wsEvent{}, errWSCloseReason
	}
	return ev, nil
}

// wsValidCloseCode reports whether a peer may send code in a close frame.
//
// [RFC6455 §7.4.2]: 0-999 are not used. 1000-2999 are reserved for this
// protocol and its extensions; of those, 1004 is reserved and 1005, 1006 and
// 1015 MUST NOT be set as a status code in a Close control frame by an
// endpoint. 3000-3999 are registered with IANA for libraries, frameworks and
// applications; 4000-4999 are for private use. 1012-1014 (service restart,
// try again later, bad gateway) are registered with IANA and accepted.
func wsValidCloseCode(c ws.StatusCode) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// shortIsNil maps io.ErrShortBuffer, which means "need more bytes", to nil.
func shortIsNil(err error) error {
	if err == io.ErrShortBuffer {
		return nil
	}
	return err
}

// appendWSHeader appends the header of an unmasked, final server frame with
// opcode op and an n-octet payload to dst, at most wsMaxServerHeader octets.
// It allocates only if dst must grow; pass a stack array's [:0] to keep the
// header off the heap and write it with the payload through Writev.
func appendWSHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n <= wsMaxControlPayload:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, b0, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// appendWSFrame appends a whole unmasked, final server frame to dst. It
// allocates only if dst must grow.
func appendWSFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = appendWSHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// appendWSClose appends a close frame with status code and reason to dst.
// A code of 0 or ws.StatusNoStatusRcvd (1005), which must not be sent on the
// wire, gives a close frame with an empty body, the right echo of a close
// that had none. reason is cut at a UTF-8 boundary to fit the 125-octet
// control frame limit. It allocates only if dst must grow.
func appendWSClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 || code == ws.StatusNoStatusRcvd {
		return appendWSHeader(dst, ws.OpClose, 0)
	}
	if room := wsMaxControlPayload - 2; len(reason) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = appendWSHeader(dst, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}
