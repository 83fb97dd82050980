package loop

import (
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// WAMP-over-RawSocket (WAMP Advanced Profile, "RawSocket Transport"): a
// 4-octet handshake each way, then frames with a 4-octet prefix. Everything
// is big-endian ("network byte order").
//
// Handshake, client to router and router to client:
//
//	0111 1111 | LLLL SSSS | RRRR RRRR | RRRR RRRR
//
// Error reply, router to client:
//
//	0111 1111 | EEEE 0000 | RRRR RRRR | RRRR RRRR
//
// Frame prefix:
//
//	RRRR XTTT | LLLL LLLL | LLLL LLLL | LLLL LLLL

// rawMagic is the first octet of a RawSocket handshake.
//
// [WAMP RawSocket]: The first octet is a magic octet with value 0x7F. This
// value is chosen to avoid any possible collision with the first octet of a
// valid HTTP request.
const rawMagic = 0x7f

const (
	// rawMaxExp is the largest LLLL value: 2^(9+L) octets go from 512
	// (L = 0) to 16 MiB (L = 15).
	rawMaxExp = 15

	// rawMaxLength is the largest payload a frame can carry, 2^24 octets
	// (the X bit set and the 24 length bits clear).
	rawMaxLength = 1 << 24

	// rawHeaderLen is the size of a frame prefix.
	rawHeaderLen = 4
)

// rawFrameType is the TTT field of a frame prefix.
type rawFrameType uint8

// [WAMP RawSocket]: The three bits TTT encode the type of the transport
// message: 0: regular WAMP message, 1: PING, 2: PONG, 3-7: reserved.
const (
	rawMessage rawFrameType = 0
	rawPing    rawFrameType = 1
	rawPong    rawFrameType = 2
)

// rawHSError is a RawSocket handshake failure; its value is the error code
// the router sends in its error reply (rawHandshakeError).
type rawHSError uint8

// [WAMP RawSocket]: the upper 4 bits [of an error reply's second octet]
// encode the error: 0: illegal (must not be used), 1: serializer
// unsupported, 2: maximum message length unacceptable, 3: use of reserved
// bits (unsupported feature), 4: maximum connection count reached.
const (
	errRawSerializer rawHSError = 1
	errRawMaxLength  rawHSError = 2
	errRawReserved   rawHSError = 3
	errRawMaxConns   rawHSError = 4
)

// Error implements error.
func (e rawHSError) Error() string {
	switch e {
	case errRawSerializer:
		return "loop: rawsocket: serializer unsupported"
	case errRawMaxLength:
		return "loop: rawsocket: maximum message length unacceptable"
	case errRawReserved:
		return "loop: rawsocket: use of reserved bits"
	case errRawMaxConns:
		return "loop: rawsocket: maximum connection count reached"
	}
	return "loop: rawsocket: handshake error"
}

// reply returns the error reply to send for e.
func (e rawHSError) reply() [4]byte { return rawHandshakeError(uint8(e)) }

// Frame errors. Each means: close the connection (there is no error frame in
// RawSocket; a router may send nothing or a WAMP ABORT first).
var (
	// errRawMagic: the first octet is not 0x7F, so this is not RawSocket.
	errRawMagic = errors.New("loop: rawsocket: first octet is not 0x7F")
	// errRawReservedBits: a frame prefix has RRRR bits set.
	errRawReservedBits = errors.New("loop: rawsocket: reserved bits set in frame prefix")
	// errRawReservedType: a frame of reserved type 3-7.
	errRawReservedType = errors.New("loop: rawsocket: reserved frame type")
	// errRawBadLength: the X bit is set together with length bits.
	errRawBadLength = errors.New("loop: rawsocket: invalid frame length")
	// errRawTooLarge: a frame longer than the maximum we announced.
	errRawTooLarge = errors.New("loop: rawsocket: frame exceeds the announced maximum length")
)

// rawHandshake is a client's accepted handshake request.
type rawHandshake struct {
	// ser is the serializer the client asked for; the reply must echo it.
	ser proto.Serializer
	// maxRecv is the longest message the client is willing to receive,
	// 2^(9+L) octets. The router MUST NOT send it longer messages.
	maxRecv int
}

// readRawHandshake reads a client's 4-octet handshake request from in.
//
// It returns n == 0 and a nil error while fewer than 4 octets are buffered.
// Otherwise n is 4, to Discard. errRawMagic means the first octet is not
// 0x7F (fail the connection without a reply); a rawHSError means: send its
// reply() and close. It does not allocate.
func readRawHandshake(in inbound) (hs rawHandshake, n int, err error) {
	b, err := in.Peek(4)
	if err != nil {
		return hs, 0, shortIsNil(err)
	}
	hs, err = parseRawHandshake(b)
	return hs, 4, err
}

// parseRawHandshake checks a 4-octet handshake request (b must hold at
// least 4 octets).
func parseRawHandshake(b []byte) (rawHandshake, error) {
	// [WAMP RawSocket]: If the first octet differs from 0x7F, it is not a
	// WAMP-over-RawSocket request.
	if b[0] != rawMagic {
		return rawHandshake{}, errRawMagic
	}
	// [WAMP RawSocket]: The third and forth octet are reserved and MUST be
	// all zeros for now.
	if b[2] != 0 || b[3] != 0 {
		return rawHandshake{}, errRawReserved
	}
	// [WAMP RawSocket]: SERIALIZER 0: illegal, 1: JSON, 2: MessagePack,
	// 3: CBOR, 4: UBJSON, 5: FlatBuffers, 6-15: reserved. The Serializer
	// values are the RawSocket ids, so the field maps directly.
	ser := proto.Serializer(b[1] & 0x0f)
	if !ser.Valid() {
		return rawHandshake{}, errRawSerializer
	}
	// [WAMP RawSocket]: The LENGTH value is used by the Client to signal
	// the maximum message length of messages it is willing to receive:
	// 0: 2**9 octets ... 15: 2**24 octets.
	return rawHandshake{ser: ser, maxRecv: rawMaxLen(b[1] >> 4)}, nil
}

// rawHandshakeReply returns the router's success reply: it echoes ser and
// announces, in ourMaxExp, the longest message the client may send us,
// 2^(9+ourMaxExp) octets (clamped to 15). The rawReader of the connection
// must use rawMaxLen(ourMaxExp) as its maxLen.
//
// [WAMP RawSocket]: In the second octet, the Router MUST echo the serializer
// value in SERIALIZER as requested by the Client. Similar to the Client, the
// Router sets the LENGTH field to request a limit on the length of messages
// sent by the Client.
func rawHandshakeReply(ser proto.Serializer, ourMaxExp uint8) [4]byte {
	ourMaxExp = min(ourMaxExp, rawMaxExp)
	return [4]byte{rawMagic, ourMaxExp<<4 | byte(ser)&0x0f, 0, 0}
}

// rawHandshakeError returns the error reply with the given code (1-15; see
// rawHSError).
//
// [WAMP RawSocket]: The second octet has its lower 4 bits zero'ed (which
// distinguishes the reply from an success/accepting reply) and the upper 4
// bits encode the error. Note that the error code 0 MUST NOT be used.
func rawHandshakeError(code uint8) [4]byte {
	return [4]byte{rawMagic, code << 4, 0, 0}
}

// rawMaxLen returns 2^(9+exp), the length an LLLL field value stands for;
// exp is clamped to 15.
func rawMaxLen(exp uint8) int { return 1 << (9 + min(exp, rawMaxExp)) }

// rawExpFor returns the largest LLLL value whose length does not exceed
// maxLen: announce it in the reply, and use rawMaxLen of it as the reader's
// limit. Below 512 octets it returns 0, the smallest length there is.
func rawExpFor(maxLen int) uint8 {
	var exp uint8
	for exp < rawMaxExp && rawMaxLen(exp+1) <= maxLen {
		exp++
	}
	return exp
}

// rawEvent is one frame read from a RawSocket connection. payload aliases
// the inbound buffer and is valid only until the caller Discards the n bytes
// next returned.
type rawEvent struct {
	typ     rawFrameType
	payload []byte
}

// rawReader parses RawSocket frames after the handshake. It holds no buffer
// and is not safe for concurrent use; it is owned by its connection's loop.
type rawReader struct {
	// maxLen is the longest payload accepted, normally the length announced
	// in the handshake reply. Static after construction; <= 0 or above 2^24
	// means 2^24.
	maxLen int
}

// limit returns the payload limit, applying the default.
func (r *rawReader) limit() int {
	if r.maxLen <= 0 || r.maxLen > rawMaxLength {
		return rawMaxLength
	}
	return r.maxLen
}

// next reads at most one frame from in.
//
// It returns n == 0 and a nil error when in does not yet hold a whole frame;
// nothing was consumed. The frame's length is checked against the limit as
// soon as the 4-octet prefix is buffered, before waiting for the payload.
// Otherwise it returns the frame, whose payload aliases in (zero copy), and
// n, the frame's size: handle ev, then Discard(n). A PING must be answered
// with one PONG carrying the same payload before that Discard.
//
// Errors (errRawReservedBits, errRawReservedType, errRawBadLength,
// errRawTooLarge, or an error from in) mean: fail the connection. next never
// allocates.
func (r *rawReader) next(in inbound) (ev rawEvent, n int, err error) {
	b, err := in.Peek(rawHeaderLen)
	if err != nil {
		return ev, 0, shortIsNil(err)
	}
	typ, length, err := r.prefix(b)
	if err != nil {
		return ev, 0, err
	}
	n = rawHeaderLen + length
	if in.InboundBuffered() < n {
		return ev, 0, nil
	}
	if b, err = in.Peek(n); err != nil {
		return ev, 0, shortIsNil(err)
	}
	return rawEvent{typ: typ, payload: b[rawHeaderLen:n:n]}, n, nil
}

// large reports a frame at the front of in whose payload is at least min
// bytes long and not wholly buffered yet, with its type and length (the
// prefix checked as next checks it): the caller may Discard the 4-octet
// prefix and take the payload out of the inbound buffer as it arrives.
func (r *rawReader) large(in inbound, min int) (typ rawFrameType, length int, ok bool, err error) {
	b, err := in.Peek(rawHeaderLen)
	if err != nil {
		return 0, 0, false, shortIsNil(err)
	}
	if typ, length, err = r.prefix(b); err != nil {
		return 0, 0, false, err
	}
	return typ, length, length >= min && in.InboundBuffered() < rawHeaderLen+length, nil
}

// prefix decodes and checks a 4-octet frame prefix.
func (r *rawReader) prefix(b []byte) (rawFrameType, int, error) {
	// [WAMP RawSocket]: The four bits RRRR are reserved for future use and
	// MUST be all zeros for now.
	if b[0]&0xf0 != 0 {
		return 0, 0, errRawReservedBits
	}
	typ := rawFrameType(b[0] & 0x07)
	if typ > rawPong {
		return 0, 0, errRawReservedType
	}
	length := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	// [WAMP RawSocket]: X is an extra (25th) bit used to encode the message
	// payload length. This bit is only set when the payload length is
	// exactly 16M octets, with the 24 remaining L bits cleared.
	if b[0]&0x08 != 0 {
		if length != 0 {
			return 0, 0, errRawBadLength
		}
		length = rawMaxLength
	}
	// [WAMP RawSocket]: If a message received during a connection exceeds
	// the limit requested, a Peer MUST fail the connection.
	if length > r.limit() {
		return 0, 0, errRawTooLarge
	}
	return typ, length, nil
}

// appendRawHeader appends the 4-octet prefix of a frame of type typ with an
// n-octet payload (0 <= n <= 2^24) to dst. It allocates only if dst must
// grow. The caller must not send a message longer than the peer's maxRecv.
func appendRawHeader(dst []byte, typ rawFrameType, n int) []byte {
	b0 := byte(typ) & 0x07
	if n == rawMaxLength {
		return append(dst, b0|0x08, 0, 0, 0)
	}
	return append(dst, b0, byte(n>>16), byte(n>>8), byte(n))
}

// appendRawFrame appends a whole frame to dst. It allocates only if dst
// must grow.
func appendRawFrame(dst []byte, typ rawFrameType, payload []byte) []byte {
	dst = appendRawHeader(dst, typ, len(payload))
	return append(dst, payload...)
}
