// Package wire holds the byte-level helpers shared by the load tool
// (wampbench) and the bare forwarder (wampfwd): a head-only scanner over
// encoded WAMP messages in JSON, MsgPack and CBOR, fixed-width integer
// fields that can be patched in place, and WebSocket and RawSocket framing.
//
// Nothing here decodes a payload: the scanner walks a message's top-level
// array element by element and skips what it does not need, so finding a
// message's type and request id costs a few byte comparisons.
//
// Concurrency: every function is safe for concurrent use; a Scanner and a
// Template are values owned by their user.
package wire

import (
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// ErrScan means the input is not the value the scanner was asked for (or
// is cut short). Scanning stops at the first error.
var ErrScan = errors.New("wire: malformed or unexpected value")

// maxSkipDepth bounds the nesting Skip walks through.
const maxSkipDepth = 64

// Scanner walks the elements of one encoded WAMP message (a top-level
// array) without decoding or allocating. Call Array first, then one of
// Uint, Str, Skip, Elem or Array per element. It aliases the input.
type Scanner struct {
	ser proto.Serializer
	b   []byte
	p   int
	// comma is true when a JSON value has been read and a separator is
	// expected before the next one.
	comma bool
}

// NewScanner returns a scanner over msg, encoded in ser.
func NewScanner(ser proto.Serializer, msg []byte) Scanner {
	return Scanner{ser: ser, b: msg}
}

// Pos returns the offset of the next unread byte.
func (s *Scanner) Pos() int { return s.p }

// elem moves to the start of the next element (JSON: past white space and
// the separating comma) and reports whether there is one.
func (s *Scanner) elem() bool {
	if s.ser != proto.JSON {
		return s.p < len(s.b)
	}
	s.ws()
	if s.comma {
		if s.p >= len(s.b) || s.b[s.p] != ',' {
			return false
		}
		s.p++
		s.ws()
	}
	s.comma = true // the value about to be read is followed by a separator
	return s.p < len(s.b)
}

func (s *Scanner) ws() {
	for s.p < len(s.b) {
		switch s.b[s.p] {
		case ' ', '\t', '\r', '\n':
			s.p++
		default:
			return
		}
	}
}

// Array reads an array header. n is the element count, or -1 when the
// encoding does not say (JSON, CBOR indefinite length).
func (s *Scanner) Array() (n int, err error) {
	if !s.elem() {
		return 0, ErrScan
	}
	c := s.b[s.p]
	switch s.ser {
	case proto.JSON:
		if c != '[' {
			return 0, ErrScan
		}
		s.p++
		s.comma = false
		return -1, nil
	case proto.MsgPack:
		switch {
		case c&0xf0 == 0x90:
			s.p++
			return int(c & 0x0f), nil
		case c == 0xdc:
			v, ok := s.be(1, 2)
			return int(v), okErr(ok)
		case c == 0xdd:
			v, ok := s.be(1, 4)
			return int(v), okErr(ok)
		}
	case proto.CBOR:
		if c>>5 != 4 {
			return 0, ErrScan
		}
		if c == 0x9f {
			s.p++
			return -1, nil
		}
		v, ok := s.cborArg()
		return int(v), okErr(ok)
	}
	return 0, ErrScan
}

// Uint reads a non-negative integer.
func (s *Scanner) Uint() (uint64, error) {
	if !s.elem() {
		return 0, ErrScan
	}
	c := s.b[s.p]
	switch s.ser {
	case proto.JSON:
		var v uint64
		start := s.p
		for s.p < len(s.b) && s.b[s.p] >= '0' && s.b[s.p] <= '9' {
			v = v*10 + uint64(s.b[s.p]-'0')
			s.p++
		}
		if s.p == start || s.p-start > 19 {
			return 0, ErrScan
		}
		if s.p < len(s.b) && (s.b[s.p] == '.' || s.b[s.p] == 'e' || s.b[s.p] == 'E') {
			return 0, ErrScan
		}
		return v, nil
	case proto.MsgPack:
		switch {
		case c < 0x80:
			s.p++
			return uint64(c), nil
		case c == 0xcc || c == 0xd0:
			v, ok := s.be(1, 1)
			return v, signOK(c == 0xd0 && v >= 0x80, ok)
		case c == 0xcd || c == 0xd1:
			v, ok := s.be(1, 2)
			return v, signOK(c == 0xd1 && v >= 0x8000, ok)
		case c == 0xce || c == 0xd2:
			v, ok := s.be(1, 4)
			return v, signOK(c == 0xd2 && v >= 0x80000000, ok)
		case c == 0xcf || c == 0xd3:
			v, ok := s.be(1, 8)
			return v, signOK(c == 0xd3 && v >= 1<<63, ok)
		}
	case proto.CBOR:
		if c>>5 != 0 {
			return 0, ErrScan
		}
		v, ok := s.cborArg()
		return v, okErr(ok)
	}
	return 0, ErrScan
}

// Str reads a text string and returns its raw bytes (for JSON, still
// escaped as on the wire).
func (s *Scanner) Str() ([]byte, error) {
	if !s.elem() {
		return nil, ErrScan
	}
	c := s.b[s.p]
	switch s.ser {
	case proto.JSON:
		if c != '"' {
			return nil, ErrScan
		}
		start := s.p + 1
		if !s.skipJSONString() {
			return nil, ErrScan
		}
		return s.b[start : s.p-1], nil
	case proto.MsgPack:
		var n uint64
		ok := true
		switch {
		case c&0xe0 == 0xa0:
			n = uint64(c & 0x1f)
			s.p++
		case c == 0xd9:
			n, ok = s.be(1, 1)
		case c == 0xda:
			n, ok = s.be(1, 2)
		case c == 0xdb:
			n, ok = s.be(1, 4)
		default:
			return nil, ErrScan
		}
		return s.take(n, ok)
	case proto.CBOR:
		if c>>5 != 3 || c == 0x7f {
			return nil, ErrScan
		}
		n, ok := s.cborArg()
		return s.take(n, ok)
	}
	return nil, ErrScan
}

// Skip passes over one value of any type.
func (s *Scanner) Skip() error {
	if !s.elem() {
		return ErrScan
	}
	return s.skipValue()
}

// Elem returns the start and end offsets of the next value and skips it.
func (s *Scanner) Elem() (start, end int, err error) {
	if !s.elem() {
		return 0, 0, ErrScan
	}
	start = s.p
	err = s.skipValue()
	return start, s.p, err
}

func (s *Scanner) skipValue() error {
	var ok bool
	switch s.ser {
	case proto.JSON:
		ok = s.skipJSON(0)
	case proto.MsgPack:
		ok = s.skipMsgPack(0)
	case proto.CBOR:
		ok = s.skipCBOR(0)
	}
	return okErr(ok)
}

func okErr(ok bool) error {
	if ok {
		return nil
	}
	return ErrScan
}

func signOK(negative, ok bool) error {
	if negative || !ok {
		return ErrScan
	}
	return nil
}

// be reads an n-byte big-endian integer after a skip-byte tag.
func (s *Scanner) be(skip, n int) (uint64, bool) {
	p := s.p + skip
	if p+n > len(s.b) {
		return 0, false
	}
	var v uint64
	for _, c := range s.b[p : p+n] {
		v = v<<8 | uint64(c)
	}
	s.p = p + n
	return v, true
}

func (s *Scanner) take(n uint64, ok bool) ([]byte, error) {
	if !ok || n > uint64(len(s.b)-s.p) {
		return nil, ErrScan
	}
	b := s.b[s.p : s.p+int(n)]
	s.p += int(n)
	return b, nil
}

// cborArg reads the argument of a CBOR head (not indefinite).
func (s *Scanner) cborArg() (uint64, bool) {
	info := s.b[s.p] & 0x1f
	switch {
	case info < 24:
		s.p++
		return uint64(info), true
	case info == 24:
		return s.be(1, 1)
	case info == 25:
		return s.be(1, 2)
	case info == 26:
		return s.be(1, 4)
	case info == 27:
		return s.be(1, 8)
	}
	return 0, false
}

func (s *Scanner) skipJSONString() bool {
	s.p++ // opening quote
	for s.p < len(s.b) {
		switch s.b[s.p] {
		case '\\':
			s.p += 2
		case '"':
			s.p++
			return true
		default:
			s.p++
		}
	}
	return false
}

func (s *Scanner) skipJSON(depth int) bool {
	if depth > maxSkipDepth || s.p >= len(s.b) {
		return false
	}
	switch c := s.b[s.p]; c {
	case '"':
		return s.skipJSONString()
	case '[', '{':
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		s.p++
		for {
			s.ws()
			if s.p >= len(s.b) {
				return false
			}
			switch s.b[s.p] {
			case end:
				s.p++
				return true
			case ',', ':':
				s.p++
				continue
			}
			if !s.skipJSON(depth + 1) {
				return false
			}
		}
	default: // number, true, false, null
		start := s.p
		for s.p < len(s.b) {
			switch s.b[s.p] {
			case ',', ']', '}', ':', ' ', '\t', '\r', '\n':
				return s.p > start
			}
			s.p++
		}
		return s.p > start
	}
}

func (s *Scanner) skipMsgPack(depth int) bool {
	if depth > maxSkipDepth || s.p >= len(s.b) {
		return false
	}
	c := s.b[s.p]
	var n uint64 // bytes to skip after the head
	var items uint64
	ok := true
	switch {
	case c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		s.p++
		return true
	case c&0xf0 == 0x80:
		s.p++
		items = 2 * uint64(c&0x0f)
	case c&0xf0 == 0x90:
		s.p++
		items = uint64(c & 0x0f)
	case c&0xe0 == 0xa0:
		s.p++
		n = uint64(c & 0x1f)
	case c == 0xcc || c == 0xd0:
		s.p++
		n = 1
	case c == 0xcd || c == 0xd1 || c == 0xd4: // int16, fixext1 (type + 1)
		s.p++
		n = 2
	case c == 0xce || c == 0xd2 || c == 0xca:
		s.p++
		n = 4
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		s.p++
		n = 8
	case c == 0xd5:
		s.p++
		n = 3
	case c == 0xd6:
		s.p++
		n = 5
	case c == 0xd7:
		s.p++
		n = 9
	case c == 0xd8:
		s.p++
		n = 17
	case c == 0xc4 || c == 0xd9:
		n, ok = s.be(1, 1)
	case c == 0xc5 || c == 0xda:
		n, ok = s.be(1, 2)
	case c == 0xc6 || c == 0xdb:
		n, ok = s.be(1, 4)
	case c == 0xc7:
		n, ok = s.be(1, 1)
		n++
	case c == 0xc8:
		n, ok = s.be(1, 2)
		n++
	case c == 0xc9:
		n, ok = s.be(1, 4)
		n++
	case c == 0xdc:
		items, ok = s.be(1, 2)
	case c == 0xdd:
		items, ok = s.be(1, 4)
	case c == 0xde:
		items, ok = s.be(1, 2)
		items *= 2
	case c == 0xdf:
		items, ok = s.be(1, 4)
		items *= 2
	default:
		return false
	}
	if !ok || n > uint64(len(s.b)-s.p) {
		return false
	}
	s.p += int(n)
	for ; items > 0; items-- {
		if !s.skipMsgPack(depth + 1) {
			return false
		}
	}
	return true
}

func (s *Scanner) skipCBOR(depth int) bool {
	if depth > maxSkipDepth || s.p >= len(s.b) {
		return false
	}
	c := s.b[s.p]
	major := c >> 5
	if c&0x1f == 31 { // indefinite length (or break, refused here)
		if major < 2 || major > 5 {
			return false
		}
		s.p++
		for s.p < len(s.b) {
			if s.b[s.p] == 0xff {
				s.p++
				return true
			}
			if !s.skipCBOR(depth + 1) {
				return false
			}
		}
		return false
	}
	if major == 7 {
		switch c & 0x1f {
		case 24:
			return s.skipN(2)
		case 25:
			return s.skipN(3)
		case 26:
			return s.skipN(5)
		case 27:
			return s.skipN(9)
		}
		return s.skipN(1)
	}
	v, ok := s.cborArg()
	if !ok {
		return false
	}
	switch major {
	case 0, 1:
		return true
	case 2, 3:
		if v > uint64(len(s.b)-s.p) {
			return false
		}
		s.p += int(v)
		return true
	case 4, 5:
		if major == 5 {
			v *= 2
		}
		if v > uint64(len(s.b)-s.p) { // each item takes at least a byte
			return false
		}
		for ; v > 0; v-- {
			if !s.skipCBOR(depth + 1) {
				return false
			}
		}
		return true
	case 6: // tag: skip the tagged value
		return s.skipCBOR(depth + 1)
	}
	return false
}

func (s *Scanner) skipN(n int) bool {
	if s.p+n > len(s.b) {
		return false
	}
	s.p += n
	return true
}

// Head returns a message's type code and the integers the load tool needs
// from its head:
//
//	a: WELCOME Session, REGISTERED/SUBSCRIBED/RESULT/PUBLISHED Request,
//	   INVOCATION Request, EVENT Subscription, ERROR REQUEST.Type
//	b: REGISTERED Registration, SUBSCRIBED Subscription, INVOCATION
//	   Registration, EVENT Publication, ERROR Request
//
// For other types, or when the second element is not an integer, a and b
// are 0. It never allocates.
func Head(ser proto.Serializer, msg []byte) (typ proto.Code, a, b uint64, err error) {
	s := NewScanner(ser, msg)
	if _, err = s.Array(); err != nil {
		return 0, 0, 0, err
	}
	t, err := s.Uint()
	if err != nil {
		return 0, 0, 0, err
	}
	typ = proto.Code(t)
	switch typ {
	case proto.CodeWelcome, proto.CodeResult, proto.CodePublished:
		a, err = s.Uint()
		if err == nil && typ == proto.CodePublished {
			b, err = s.Uint()
		}
	case proto.CodeRegistered, proto.CodeSubscribed, proto.CodeInvocation, proto.CodeEvent, proto.CodeError:
		if a, err = s.Uint(); err == nil {
			b, err = s.Uint()
		}
	}
	return typ, a, b, err
}

// EventStamp returns the first element of an EVENT's Arguments when it is
// an integer (the load tool's send timestamp): [EVENT, Subscription,
// Publication, Details, [stamp, ...]].
func EventStamp(ser proto.Serializer, msg []byte) (uint64, error) {
	s := NewScanner(ser, msg)
	if _, err := s.Array(); err != nil {
		return 0, err
	}
	for i := 0; i < 4; i++ { // type, subscription, publication, details
		if err := s.Skip(); err != nil {
			return 0, err
		}
	}
	if _, err := s.Array(); err != nil {
		return 0, err
	}
	return s.Uint()
}

// ErrorURI returns the Error|uri of an ERROR message: [ERROR, REQUEST.Type,
// Request, Details, Error, ...]. For JSON the bytes are still escaped.
func ErrorURI(ser proto.Serializer, msg []byte) ([]byte, error) {
	s := NewScanner(ser, msg)
	if _, err := s.Array(); err != nil {
		return nil, err
	}
	for i := 0; i < 4; i++ {
		if err := s.Skip(); err != nil {
			return nil, err
		}
	}
	return s.Str()
}
