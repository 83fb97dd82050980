package proto

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"
)

// wr appends encoded values to b. JSON separators are the caller's job
// (comma, colon), so that wr needs no stack.
type wr struct {
	b   []byte
	ser Serializer
	// max, when positive, is the length past which transcoding into b
	// stops with ErrTooLarge (Encoder.MaxConverted).
	max int
}

func (w *wr) comma() {
	if w.ser == JSON {
		w.b = append(w.b, ',')
	}
}

func (w *wr) colon() {
	if w.ser == JSON {
		w.b = append(w.b, ':')
	}
}

func (w *wr) arr(n int) {
	switch w.ser {
	case JSON:
		w.b = append(w.b, '[')
	case MsgPack:
		switch {
		case n < 16:
			w.b = append(w.b, 0x90|byte(n))
		case n <= math.MaxUint16:
			w.b = append(w.b, 0xdc, byte(n>>8), byte(n))
		default:
			w.b = append(w.b, 0xdd)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
		}
	case CBOR:
		w.cbHead(4, uint64(n))
	}
}

func (w *wr) endArr() {
	if w.ser == JSON {
		w.b = append(w.b, ']')
	}
}

func (w *wr) mapH(n int) {
	switch w.ser {
	case JSON:
		w.b = append(w.b, '{')
	case MsgPack:
		switch {
		case n < 16:
			w.b = append(w.b, 0x80|byte(n))
		case n <= math.MaxUint16:
			w.b = append(w.b, 0xde, byte(n>>8), byte(n))
		default:
			w.b = append(w.b, 0xdf)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
		}
	case CBOR:
		w.cbHead(5, uint64(n))
	}
}

func (w *wr) endMap() {
	if w.ser == JSON {
		w.b = append(w.b, '}')
	}
}

func (w *wr) cbHead(major byte, v uint64) {
	m := major << 5
	switch {
	case v < 24:
		w.b = append(w.b, m|byte(v))
	case v <= math.MaxUint8:
		w.b = append(w.b, m|24, byte(v))
	case v <= math.MaxUint16:
		w.b = append(w.b, m|25, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		w.b = append(w.b, m|26)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(v))
	default:
		w.b = append(w.b, m|27)
		w.b = binary.BigEndian.AppendUint64(w.b, v)
	}
}

func (w *wr) null() {
	switch w.ser {
	case JSON:
		w.b = append(w.b, "null"...)
	case MsgPack:
		w.b = append(w.b, 0xc0)
	case CBOR:
		w.b = append(w.b, 0xf6)
	}
}

func (w *wr) bool(v bool) {
	switch w.ser {
	case JSON:
		if v {
			w.b = append(w.b, "true"...)
		} else {
			w.b = append(w.b, "false"...)
		}
	case MsgPack:
		if v {
			w.b = append(w.b, 0xc3)
		} else {
			w.b = append(w.b, 0xc2)
		}
	case CBOR:
		if v {
			w.b = append(w.b, 0xf5)
		} else {
			w.b = append(w.b, 0xf4)
		}
	}
}

// uint writes a non-negative integer in its shortest form.
func (w *wr) uint(u uint64) {
	switch w.ser {
	case JSON:
		w.b = strconv.AppendUint(w.b, u, 10)
	case MsgPack:
		switch {
		case u <= 0x7f:
			w.b = append(w.b, byte(u))
		case u <= math.MaxUint8:
			w.b = append(w.b, 0xcc, byte(u))
		case u <= math.MaxUint16:
			w.b = append(w.b, 0xcd, byte(u>>8), byte(u))
		case u <= math.MaxUint32:
			w.b = append(w.b, 0xce)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(u))
		default:
			w.b = append(w.b, 0xcf)
			w.b = binary.BigEndian.AppendUint64(w.b, u)
		}
	case CBOR:
		w.cbHead(0, u)
	}
}

// int writes a signed integer in its shortest form.
func (w *wr) int(v int64) {
	if v >= 0 {
		w.uint(uint64(v))
		return
	}
	w.neg(uint64(^v))
}

// neg writes the negative integer -1-u. MsgPack cannot carry values below
// -2^63; those become a float64, the closest it can.
func (w *wr) neg(u uint64) {
	switch w.ser {
	case JSON:
		if u == math.MaxUint64 {
			w.b = append(w.b, "-18446744073709551616"...)
			return
		}
		w.b = append(w.b, '-')
		w.b = strconv.AppendUint(w.b, u+1, 10)
	case MsgPack:
		if u > math.MaxInt64 {
			// The value -1-u rounded once: -1 - float64(u) would round
			// twice and can miss the nearest float64.
			f := -0x1p64
			if u != math.MaxUint64 {
				f = -float64(u + 1)
			}
			w.float(f)
			return
		}
		v := ^int64(u)
		switch {
		case v >= -32:
			w.b = append(w.b, byte(int8(v)))
		case v >= math.MinInt8:
			w.b = append(w.b, 0xd0, byte(int8(v)))
		case v >= math.MinInt16:
			w.b = append(w.b, 0xd1, byte(uint16(v)>>8), byte(v))
		case v >= math.MinInt32:
			w.b = append(w.b, 0xd2)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(v))
		default:
			w.b = append(w.b, 0xd3)
			w.b = binary.BigEndian.AppendUint64(w.b, uint64(v))
		}
	case CBOR:
		w.cbHead(1, u)
	}
}

// float writes a float64. JSON has no NaN or infinity, so those are an error
// there. JSON output always shows a fraction or exponent ("1.0", not "1") so
// that the value reads back as a float.
func (w *wr) float(f float64) error {
	switch w.ser {
	case JSON:
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return ErrNotJSONable
		}
		start := len(w.b)
		w.b = strconv.AppendFloat(w.b, f, 'g', -1, 64)
		for _, c := range w.b[start:] {
			if c == '.' || c == 'e' {
				return nil
			}
		}
		w.b = append(w.b, '.', '0')
	case MsgPack:
		w.b = append(w.b, 0xcb)
		w.b = binary.BigEndian.AppendUint64(w.b, math.Float64bits(f))
	case CBOR:
		w.b = append(w.b, 0xfb)
		w.b = binary.BigEndian.AppendUint64(w.b, math.Float64bits(f))
	}
	return nil
}

// str writes a text string. s must be valid UTF-8 (JSON output checks it,
// and refuses a string starting with NUL, which would read back as binary).
func (w *wr) str(s []byte) error {
	switch w.ser {
	case JSON:
		return w.jsonStr(s)
	case MsgPack:
		w.mpStrHead(len(s))
	case CBOR:
		w.cbHead(3, uint64(len(s)))
	}
	w.b = append(w.b, s...)
	return nil
}

// strS is str for a string.
func (w *wr) strS(s string) error {
	switch w.ser {
	case JSON:
		return w.jsonStrS(s)
	case MsgPack:
		w.mpStrHead(len(s))
	case CBOR:
		w.cbHead(3, uint64(len(s)))
	}
	w.b = append(w.b, s...)
	return nil
}

func (w *wr) mpStrHead(n int) {
	switch {
	case n < 32:
		w.b = append(w.b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		w.b = append(w.b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		w.b = append(w.b, 0xda, byte(n>>8), byte(n))
	default:
		w.b = append(w.b, 0xdb)
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
	}
}

// bin writes a byte string; in JSON as "\u0000" + base64 (WAMP §Binary
// conversion of JSON strings).
func (w *wr) bin(p []byte) {
	switch w.ser {
	case JSON:
		w.b = append(w.b, `"\u0000`...)
		n := base64.StdEncoding.EncodedLen(len(p))
		start := len(w.b)
		w.b = growLen(w.b, n)
		base64.StdEncoding.Encode(w.b[start:], p)
		w.b = append(w.b, '"')
	case MsgPack:
		n := len(p)
		switch {
		case n <= math.MaxUint8:
			w.b = append(w.b, 0xc4, byte(n))
		case n <= math.MaxUint16:
			w.b = append(w.b, 0xc5, byte(n>>8), byte(n))
		default:
			w.b = append(w.b, 0xc6)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(n))
		}
		w.b = append(w.b, p...)
	case CBOR:
		w.cbHead(2, uint64(len(p)))
		w.b = append(w.b, p...)
	}
}

// big writes an integer given as a big.Int, in the shortest form: a plain
// integer when it fits in [-2^64, 2^64-1] (CBOR's native range; MsgPack
// takes a float below -2^63), otherwise JSON digits, a CBOR bignum or a
// MsgPack float64. An integer beyond float64's range has no MsgPack form,
// one beyond 8192 bits no JSON or CBOR form (the readers refuse it).
func (w *wr) big(v *big.Int) error {
	if v.IsUint64() {
		w.uint(v.Uint64())
		return nil
	}
	if v.IsInt64() {
		w.int(v.Int64())
		return nil
	}
	if v.Sign() < 0 {
		m := new(big.Int).Not(v) // -1-v
		if m.IsUint64() {
			w.neg(m.Uint64())
			return nil
		}
	}
	if w.ser != MsgPack && v.BitLen() > 8*maxBigBytes {
		// Every reader of this package refuses it: a JSON one ends the
		// session of a peer that sends it; a CBOR bignum (-2^8192, 2^8192)
		// passed to a CBOR peer as it came was refused by its reader, the
		// event lost. An error here rather than a lost session or message
		// for the Go client.
		return errBigTooLarge
	}
	switch w.ser {
	case JSON:
		w.b = v.Append(w.b, 10)
	case MsgPack:
		f, _ := new(big.Float).SetInt(v).Float64()
		if math.IsInf(f, 0) {
			return errNotMsgPackable
		}
		return w.float(f)
	case CBOR:
		m := v
		w.b = append(w.b, 0xc2)
		if v.Sign() < 0 {
			m = new(big.Int).Not(v) // the magnitude of tag 3 is -1-v
			w.b[len(w.b)-1] = 0xc3
		}
		mag := m.Bytes()
		w.cbHead(2, uint64(len(mag)))
		w.b = append(w.b, mag...)
	}
	return nil
}

// errNotMsgPackable: MsgPack carries integers beyond 64 bits as float64,
// and some are beyond float64 too.
var errNotMsgPackable = errf("integer too large for MsgPack (beyond float64)")

// jsonSafe[c] is true for ASCII bytes that need no escaping in a JSON string.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// WAMP §Binary conversion of JSON strings: a JSON string whose first
// character is NUL is binary, so a text string starting with NUL has no JSON
// form.
var errNULText = ErrNotJSONable

// jsonStr writes the text s as a JSON string. Its JSON form may be up to 6
// times as long (a control character is 1 byte, its escape 6): when that
// could pass w.max (Encoder.MaxConverted), the escapes are counted first
// and a string whose form would pass it is refused with ErrTooLarge before
// anything is written, else written into room grown once. Without that
// check a 16 MiB string was written whole (96 MiB, regrown 6 bytes at a
// time) before the bound was looked at again. A string that cannot reach
// the bound is written in one pass, as before.
func (w *wr) jsonStr(s []byte) error {
	if len(s) > 0 && s[0] == 0 {
		return errNULText
	}
	if w.max > 0 && len(w.b)+6*len(s)+2 > w.max {
		if err := w.jsonRoom(jsonExtra(s), len(s)); err != nil {
			return err
		}
	}
	w.b = append(w.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return ErrBadUTF8
			}
			i += size
			continue
		}
		w.b = append(w.b, s[start:i]...)
		w.b = appendEscape(w.b, c)
		i++
		start = i
	}
	w.b = append(w.b, s[start:]...)
	w.b = append(w.b, '"')
	return nil
}

// jsonStrS is jsonStr for a string.
func (w *wr) jsonStrS(s string) error {
	if len(s) > 0 && s[0] == 0 {
		return errNULText
	}
	if w.max > 0 && len(w.b)+6*len(s)+2 > w.max {
		if err := w.jsonRoom(jsonExtra(s), len(s)); err != nil {
			return err
		}
	}
	w.b = append(w.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return ErrBadUTF8
			}
			i += size
			continue
		}
		w.b = append(w.b, s[start:i]...)
		w.b = appendEscape(w.b, c)
		i++
		start = i
	}
	w.b = append(w.b, s[start:]...)
	w.b = append(w.b, '"')
	return nil
}

// jsonRoom checks that a string of n bytes whose escapes add extra bytes
// fits within w.max quoted, and makes room for it.
func (w *wr) jsonRoom(extra, n int) error {
	n += extra + 2
	if len(w.b)+n > w.max {
		return ErrTooLarge
	}
	w.b = slices.Grow(w.b, n)
	return nil
}

// jsonExtra is the number of bytes the JSON escapes of s add to it (see
// appendEscape). Its UTF-8 is checked as it is written.
func jsonExtra[S ~[]byte | ~string](s S) int {
	extra := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 && !jsonSafe[c] {
			extra += escapeExtra(c)
		}
	}
	return extra
}

// escapeExtra is the number of bytes the JSON escape of the ASCII byte c
// (one that is not jsonSafe) adds to it: see appendEscape.
func escapeExtra(c byte) int {
	switch c {
	case '"', '\\', '\n', '\r', '\t':
		return 1
	}
	return 5
}

func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}
