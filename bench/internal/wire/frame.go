package wire

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	OpCont   = 0x0
	OpText   = 0x1
	OpBinary = 0x2
	OpClose  = 0x8
	OpPing   = 0x9
	OpPong   = 0xa
)

// RawSocket message types (WAMP §RawSocket Transport): the low three bits
// of a frame's first octet.
const (
	RawMessage = 0
	RawPing    = 1
	RawPong    = 2
)

// RawMagic is the first octet of a RawSocket handshake.
const RawMagic = 0x7f

// Framing errors.
var (
	ErrHandshake = errors.New("wire: handshake refused or malformed")
	ErrFrame     = errors.New("wire: malformed frame")
	ErrTooLarge  = errors.New("wire: frame too large")
)

// MaxFrame bounds a frame's declared length (the router's default message
// limit).
const MaxFrame = 16 << 20

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func AcceptKey(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// AppendUpgradeRequest appends a client's HTTP upgrade request for the
// WAMP subprotocol of ser.
func AppendUpgradeRequest(dst []byte, host, path, key string, ser proto.Serializer) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	dst = append(dst, "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "...)
	dst = append(dst, ser.Subprotocol(false)...)
	return append(dst, "\r\n\r\n"...)
}

// ParseUpgradeResponse reads a server's answer to an upgrade request. n is
// 0 while the header is incomplete; otherwise it is the header's length
// and err says whether the upgrade succeeded with subprotocol want.
func ParseUpgradeResponse(b []byte, want proto.Serializer) (n int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 16<<10 {
			return len(b), ErrHandshake
		}
		return 0, nil
	}
	n = end + 4
	hdr := b[:end]
	if !bytes.HasPrefix(hdr, []byte("HTTP/1.1 101")) {
		return n, ErrHandshake
	}
	v := headerValue(hdr, "sec-websocket-protocol")
	if string(v) != want.Subprotocol(false) {
		return n, ErrHandshake
	}
	return n, nil
}

// UpgradeRequest is what a server needs from a client's upgrade request.
type UpgradeRequest struct {
	Path      []byte
	Key       []byte
	Protocols []byte // Sec-WebSocket-Protocol, comma separated
}

// ParseUpgradeRequest reads a client's HTTP upgrade request. n is 0 while
// the header is incomplete. The fields alias b.
func ParseUpgradeRequest(b []byte) (req UpgradeRequest, n int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 16<<10 {
			return req, len(b), ErrHandshake
		}
		return req, 0, nil
	}
	n = end + 4
	hdr := b[:end]
	if !bytes.HasPrefix(hdr, []byte("GET ")) {
		return req, n, ErrHandshake
	}
	line := hdr[4:]
	if i := bytes.IndexByte(line, ' '); i > 0 {
		req.Path = line[:i]
	}
	req.Key = headerValue(hdr, "sec-websocket-key")
	req.Protocols = headerValue(hdr, "sec-websocket-protocol")
	if len(req.Key) == 0 || len(req.Path) == 0 {
		return req, n, ErrHandshake
	}
	return req, n, nil
}

// ChooseSubprotocol returns the first WAMP serializer (non-batched) named
// in a Sec-WebSocket-Protocol list.
func ChooseSubprotocol(list []byte) (proto.Serializer, bool) {
	for len(list) > 0 {
		var item []byte
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			item, list = list, nil
		}
		s, batched, ok := proto.ParseSubprotocol(string(bytes.TrimSpace(item)))
		if ok && !batched {
			return s, true
		}
	}
	return 0, false
}

// AppendUpgradeResponse appends a server's 101 answer.
func AppendUpgradeResponse(dst, key []byte, ser proto.Serializer) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, AcceptKey(key)...)
	dst = append(dst, "\r\nSec-WebSocket-Protocol: "...)
	dst = append(dst, ser.Subprotocol(false)...)
	return append(dst, "\r\n\r\n"...)
}

// headerValue returns the value of the header named name (lower case) in
// an HTTP header block, or nil.
func headerValue(hdr []byte, name string) []byte {
	for len(hdr) > 0 {
		var line []byte
		if i := bytes.Index(hdr, []byte("\r\n")); i >= 0 {
			line, hdr = hdr[:i], hdr[i+2:]
		} else {
			line, hdr = hdr, nil
		}
		c := bytes.IndexByte(line, ':')
		if c != len(name) {
			continue
		}
		if asciiLowerEq(line[:c], name) {
			return bytes.TrimSpace(line[c+1:])
		}
	}
	return nil
}

func asciiLowerEq(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// FrameHeader is a parsed WebSocket frame header.
type FrameHeader struct {
	Fin    bool
	Op     byte
	Masked bool
	Mask   [4]byte
	Len    int
}

// ParseFrameHeader parses the WebSocket frame header at the start of b. n is
// the header's length, 0 when b does not hold the whole header yet.
func ParseFrameHeader(b []byte) (h FrameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Op = b[0] & 0x0f
	if b[0]&0x70 != 0 {
		return h, 0, ErrFrame // no extension negotiated
	}
	h.Masked = b[1]&0x80 != 0
	l := uint64(b[1] & 0x7f)
	n = 2
	switch l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		l = uint64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		l = binary.BigEndian.Uint64(b[2:])
		n = 10
	}
	if l > MaxFrame {
		return h, 0, ErrTooLarge
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	h.Len = int(l)
	return h, n, nil
}

// AppendFrameHeader appends a final frame's header for an n-byte payload;
// with mask non-nil the frame is marked masked with that key (the caller
// masks the payload).
func AppendFrameHeader(dst []byte, op byte, n int, mask *[4]byte) []byte {
	var m byte
	if mask != nil {
		m = 0x80
	}
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, m|byte(n))
	case n < 1<<16:
		dst = append(dst, m|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if mask != nil {
		dst = append(dst, mask[:]...)
	}
	return dst
}

// MaskBytes XORs b with key, starting at key position phase (RFC 6455
// §5.3). Masking twice unmasks.
func MaskBytes(b []byte, key [4]byte, phase int) {
	if key == ([4]byte{}) {
		return
	}
	k := [4]byte{key[phase&3], key[(phase+1)&3], key[(phase+2)&3], key[(phase+3)&3]}
	k32 := binary.LittleEndian.Uint32(k[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&3]
	}
}

// RawHandshake returns a client's RawSocket handshake asking for ser and a
// maximum message length of 2^(9+maxLenExp) bytes.
func RawHandshake(ser proto.Serializer, maxLenExp byte) [4]byte {
	return [4]byte{RawMagic, maxLenExp<<4 | byte(ser), 0, 0}
}

// ParseRawHandshake checks a RawSocket handshake (either side's). It
// returns the serializer, or an error for an error reply or a bad magic.
func ParseRawHandshake(b []byte) (proto.Serializer, error) {
	if len(b) < 4 || b[0] != RawMagic || b[2] != 0 || b[3] != 0 {
		return 0, ErrHandshake
	}
	s := proto.Serializer(b[1] & 0x0f)
	if !s.Valid() {
		return 0, ErrHandshake
	}
	return s, nil
}

// ParseRawHeader parses a RawSocket frame header (4 octets). ok is false
// while fewer than 4 bytes are there.
func ParseRawHeader(b []byte) (typ byte, n int, ok bool, err error) {
	if len(b) < 4 {
		return 0, 0, false, nil
	}
	if b[0]&0xf8 != 0 {
		return 0, 0, false, ErrFrame
	}
	n = int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	return b[0] & 7, n, true, nil
}

// AppendRawHeader appends a RawSocket frame header.
func AppendRawHeader(dst []byte, typ byte, n int) []byte {
	return append(dst, typ, byte(n>>16), byte(n>>8), byte(n))
}

// Framer frames WAMP messages for one connection.
type Framer struct {
	WS   bool             // WebSocket (else RawSocket)
	Ser  proto.Serializer // text frames for JSON, binary otherwise
	Mask *[4]byte         // client-to-server WebSocket frames: the masking key
}

// Append appends msg framed (and masked) to dst.
func (f *Framer) Append(dst, msg []byte) []byte {
	if !f.WS {
		dst = AppendRawHeader(dst, RawMessage, len(msg))
		return append(dst, msg...)
	}
	op := byte(OpBinary)
	if f.Ser == proto.JSON {
		op = OpText
	}
	dst = AppendFrameHeader(dst, op, len(msg), f.Mask)
	start := len(dst)
	dst = append(dst, msg...)
	if f.Mask != nil {
		MaskBytes(dst[start:], *f.Mask, 0)
	}
	return dst
}

// Overhead returns the framing bytes Append adds to an n-byte message.
func (f *Framer) Overhead(n int) int {
	if !f.WS {
		return 4
	}
	h := 2
	switch {
	case n >= 1<<16:
		h = 10
	case n >= 126:
		h = 4
	}
	if f.Mask != nil {
		h += 4
	}
	return h
}
