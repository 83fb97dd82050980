package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON reading. The message head is scanned by hand: no reflection, no
// allocation. Strings are returned as the raw text between the quotes plus a
// flag telling whether it holds escapes, so that the common escape-free case
// is zero-copy.

func (r *rd) jsonWS() { r.i = jsonWSAt(r.b, r.i) }

func (r *rd) jsonNext(t *tok) error {
	r.jsonWS()
	if r.i >= len(r.b) {
		return ErrTruncated
	}
	switch c := r.b[r.i]; c {
	case '[':
		r.i++
		t.set(kArr, false, false, openLen, 0, nil)
		return nil
	case '{':
		r.i++
		t.set(kMap, false, false, openLen, 0, nil)
		return nil
	case '"':
		return r.jsonString(t)
	case 't':
		t.set(kBool, false, false, 1, 0, nil)
		return r.jsonLit("true")
	case 'f':
		t.set(kBool, false, false, 0, 0, nil)
		return r.jsonLit("false")
	case 'n':
		t.set(kNull, false, false, 0, 0, nil)
		return r.jsonLit("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return r.jsonNumber(t)
		}
	}
	return ErrBadSyntax
}

// jsonLit consumes the literal lit (true, false, null).
func (r *rd) jsonLit(lit string) (err error) {
	r.i, err = jsonLitAt(r.b, r.i, lit)
	return err
}

// jsonString scans a string starting at the opening quote. It validates
// escapes and UTF-8, and classifies "\u0000"-prefixed strings as binary.
func (r *rd) jsonString(t *tok) error {
	if end, ok := jsonScanBinary(r.b, r.i); ok {
		// The common binary string: plain padded base64, checked.
		t.set(kBin, false, false, 0, 0, r.b[r.i+7:end:end])
		r.i = end + 1
		return nil
	}
	end, esc, err := jsonScanString(r.b, r.i)
	if err != nil {
		return err
	}
	s := r.b[r.i+1 : end : end]
	r.i = end + 1
	// WAMP §Binary conversion of JSON strings: a string whose first
	// character is NUL carries base64 bytes.
	if len(s) >= 6 && string(s[:6]) == `\u0000` {
		s = s[6:]
		if !jsonBase64OK(s) {
			return ErrBadBase64
		}
		// esc tells whether the base64 text itself holds escapes (rare).
		t.set(kBin, false, esc && bytes.IndexByte(s, '\\') >= 0, 0, 0, s)
		return nil
	}
	t.set(kStr, false, esc, 0, 0, s)
	return nil
}

// jsonKey is readKey for JSON: the key string, unescaped into sc when it
// holds escapes, and the colon after it.
func (r *rd) jsonKey(sc *[]byte) ([]byte, error) {
	r.jsonWS()
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		var t tok
		if err := r.jsonNext(&t); err != nil {
			return nil, err
		}
		return nil, ErrKeyNotString
	}
	end, esc, err := jsonScanString(r.b, r.i)
	if err != nil {
		return nil, err
	}
	s := r.b[r.i+1 : end : end]
	r.i = end + 1
	if len(s) >= 6 && string(s[:6]) == `\u0000` {
		return nil, ErrKeyBinary
	}
	if esc {
		start := len(*sc)
		out, err := appendUnescaped(*sc, s)
		if err != nil {
			return nil, err
		}
		*sc = out
		s = out[start:len(out):len(out)]
	}
	return s, r.colon()
}

// SWAR constants for jsonScanString: a byte repeated in every lane.
const (
	lanes1    = 0x0101010101010101
	lanes80   = 0x8080808080808080
	lanesQ    = 0x2222222222222222 // '"'
	lanesBS   = 0x5C5C5C5C5C5C5C5C // backslash
	lanesCtrl = 0x2020202020202020 // bytes below this are control characters
)

// jsonScanString validates the JSON string whose opening quote is at b[q]
// (escapes and UTF-8) and returns the index of its closing quote, and
// whether the content holds escapes.
//
// Payload text is mostly plain ASCII, so the scan looks at 8 bytes at a
// time: a word is skipped whole when none of its bytes is a quote, a
// backslash or a control character (the classic "has zero byte" bit trick,
// whose lowest flagged lane is always exact); bytes >= 0x80 are only
// remembered, and such strings are checked with utf8.Valid at the end.
func jsonScanString(b []byte, q int) (end int, esc bool, err error) {
	i := q + 1
	var high uint64
	for {
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			qw, bw := w^lanesQ, w^lanesBS
			m := ((qw - lanes1) &^ qw) | ((bw - lanes1) &^ bw) | ((w - lanesCtrl) &^ w)
			if m &= lanes80; m != 0 {
				n := bits.TrailingZeros64(m) >> 3
				high |= w & (1<<(8*n) - 1)
				i += n
				break
			}
			high |= w
			i += 8
		}
		if i >= len(b) {
			return 0, false, ErrTruncated
		}
		c := b[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return 0, false, ErrBadSyntax
		}
		if c >= 0x80 {
			high = lanes80
			i++
			continue
		}
		if c != '\\' {
			i++
			continue
		}
		esc = true
		if i+1 >= len(b) {
			return 0, false, ErrTruncated
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) {
				return 0, false, ErrTruncated
			}
			for _, h := range b[i+2 : i+6] {
				if hexVal(h) < 0 {
					return 0, false, ErrBadEscape
				}
			}
			i += 6
		default:
			return 0, false, ErrBadEscape
		}
	}
	if high&lanes80 != 0 && !utf8.Valid(b[q+1:i]) {
		return 0, false, ErrBadUTF8
	}
	return i, esc, nil
}

// jsonNumber scans a number per RFC 8259 §6. Integers become kInt (or kBig
// beyond 64 bits); anything with a fraction or exponent is kFloat.
func (r *rd) jsonNumber(t *tok) error {
	b := r.b
	start := r.i
	// Fast path for the common case (message codes, ids, timeouts): up to
	// 19 digits, which cannot overflow, and no fraction or exponent.
	if c := b[start]; c >= '1' && c <= '9' {
		u := uint64(c - '0')
		j := start + 1
		for j < len(b) && j-start < 19 && b[j]-'0' <= 9 {
			u = u*10 + uint64(b[j]-'0')
			j++
		}
		if j == len(b) || (b[j]-'0' > 9 && b[j] != '.' && b[j] != 'e' && b[j] != 'E') {
			r.i = j
			t.set(kInt, false, false, u, 0, nil)
			return nil
		}
	}
	digits, intEnd, end, isFloat, err := jsonScanNumber(b, start)
	if err != nil {
		return err
	}
	r.i = end
	if isFloat {
		f, err := parseFloat(b[start:end])
		if err != nil {
			return ErrNumberRange // the grammar was checked: a range error
		}
		t.set(kFloat, false, false, 0, f, nil)
		return nil
	}
	u, ok := parseDigits(b[digits:intEnd])
	neg := digits > start
	if !ok {
		t.set(kBig, neg, false, 0, 0, b[digits:intEnd:intEnd])
		return nil
	}
	if neg {
		if u == 0 { // "-0" is the integer 0
			t.set(kInt, false, false, 0, 0, nil)
			return nil
		}
		t.set(kInt, true, false, u-1, 0, nil)
		return nil
	}
	t.set(kInt, false, false, u, 0, nil)
	return nil
}

// jsonScanNumber checks the grammar of the number at b[start:]: its integer
// digits are b[digits:intEnd], and it ends at end.
func jsonScanNumber(b []byte, start int) (digits, intEnd, end int, isFloat bool, err error) {
	i := start
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, 0, 0, false, ErrTruncated
	}
	digits = i
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return 0, 0, 0, false, ErrBadNumber
	}
	intEnd = i
	if i < len(b) && b[i] == '.' {
		isFloat = true
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, 0, false, ErrBadNumber
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isFloat = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, 0, false, ErrBadNumber
		}
	}
	switch {
	case !isFloat && intEnd-digits >= maxBigDigits:
		if intEnd-digits > maxBigDigits || string(b[digits:intEnd]) > maxBigDecimal {
			return 0, 0, 0, false, errIntTooLarge
		}
	case isFloat && i-start > maxFloatText:
		return 0, 0, 0, false, ErrNumberText
	}
	return digits, intEnd, i, isFloat, nil
}

// A JSON integer's magnitude is at most 8192 bits, the bound of its
// conversion to another serializer (bigOf), wherever JSON is read: a
// larger one reached JSON peers as it came while MsgPack and CBOR peers
// got nothing, and Python's int() (json.loads: Autobahn|Python) refuses
// more than 4,300 digits, so its JSON subscribers lost their connection.
// A float's text is bounded too: 4 KiB holds every float64's exact decimal
// expansion (at most 767 significant digits and 1,074 after the point).
const maxFloatText = 4 << 10

// maxBigDecimal is 2^8192 - 1 in decimal, maxBigDigits digits.
var maxBigDecimal = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8*maxBigBytes), big.NewInt(1)).String()

var errIntTooLarge = errf("integer beyond 8192 bits")

// jsonSkip consumes one JSON value and accepts and refuses exactly what
// skipValue's token walk does, without building tokens or converting
// numbers: it is how a JSON payload (Arguments, ArgumentsKw, unknown
// options) is validated on its way through the router.
func (r *rd) jsonSkip(depth int) error {
	i, err := jsonSkipAt(r.b, r.i, depth)
	if err != nil && r.takeProto && err == ErrKeyNotString {
		// Perhaps a key "__proto__", which the token walk takes
		// (skipKey): walked again that way, once (a cold path).
		return r.skipTokens(depth)
	}
	r.i = i
	return err
}

// jsonSkipAt is jsonSkip on plain values, so that the position stays in a
// register rather than going through memory at every byte.
func jsonSkipAt(b []byte, i, depth int) (int, error) {
	i = jsonWSAt(b, i)
	if i >= len(b) {
		return i, ErrTruncated
	}
	switch c := b[i]; c {
	case '"':
		if end, ok := jsonScanBinary(b, i); ok {
			return end + 1, nil
		}
		end, esc, err := jsonScanString(b, i)
		if err == nil && esc && end-i > 6 && string(b[i+1:i+7]) == `\u0000` && !jsonBase64OK(b[i+7:end]) {
			return i, ErrBadBase64 // as jsonString refuses it
		}
		return end + 1, err
	case '[', '{':
		if depth >= MaxDepth {
			return i, ErrTooDeep
		}
		i++
		close := byte(']')
		if c == '{' {
			close = '}'
		}
		for first := true; ; first = false {
			i = jsonWSAt(b, i)
			if i >= len(b) {
				return i, ErrTruncated
			}
			if b[i] == close {
				return i + 1, nil
			}
			if !first {
				if b[i] != ',' {
					return i, ErrBadSyntax
				}
				i++
			}
			if c == '{' {
				i = jsonWSAt(b, i)
				if i >= len(b) || b[i] != '"' {
					r := rd{b: b, i: i, ser: JSON}
					return i, r.skipKey() // the token walk reports what is wrong
				}
				end, esc, err := jsonScanString(b, i)
				if err != nil {
					return i, err
				}
				if esc && end-i > 6 && string(b[i+1:i+7]) == `\u0000` {
					return i, ErrKeyBinary // as skipKey finds
				}
				if end-i == len(protoKey)+1 && string(b[i+1:end]) == protoKey || esc && isProtoKey(b[i+1:end], JSON) {
					return i, ErrKeyNotString // as skipKey finds
				}
				i = jsonWSAt(b, end+1)
				if i >= len(b) {
					return i, ErrTruncated
				}
				if b[i] != ':' {
					return i, ErrBadSyntax
				}
				i++
			}
			var err error
			if i, err = jsonSkipAt(b, i, depth+1); err != nil {
				return i, err
			}
		}
	case 't':
		return jsonLitAt(b, i, "true")
	case 'f':
		return jsonLitAt(b, i, "false")
	case 'n':
		return jsonLitAt(b, i, "null")
	}
	start := i
	digits, intEnd, end, isFloat, err := jsonScanNumber(b, start)
	if err != nil {
		if b[start] != '-' && (b[start] < '0' || b[start] > '9') {
			return i, ErrBadSyntax
		}
		return i, err
	}
	// Only a float with an exponent or hundreds of digits can be out of
	// range, which jsonNumber refuses; check just those.
	if isFloat && (intEnd-digits > 300 || hasExponent(b[intEnd:end])) {
		if _, err := parseFloat(b[start:end]); err != nil {
			return i, ErrNumberRange
		}
	}
	return end, nil
}

func hasExponent(frac []byte) bool {
	for _, c := range frac {
		if c == 'e' || c == 'E' {
			return true
		}
	}
	return false
}

// jsonWSAt returns the index of the first non-whitespace byte at or after i.
func jsonWSAt(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonLitAt consumes the literal lit (true, false, null) at b[i:].
func jsonLitAt(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) {
		return i, ErrTruncated
	}
	if string(b[i:i+len(lit)]) != lit {
		return i, ErrBadSyntax
	}
	return i + len(lit), nil
}

// parseDigits parses ASCII digits into a uint64; ok is false on overflow.
func parseDigits(d []byte) (uint64, bool) {
	var u uint64
	for _, c := range d {
		v := uint64(c - '0')
		if u > (1<<64-1-v)/10 {
			return 0, false
		}
		u = u*10 + v
	}
	return u, true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func hex4(s []byte) rune {
	return rune(hexVal(s[0])<<12 | hexVal(s[1])<<8 | hexVal(s[2])<<4 | hexVal(s[3]))
}

// appendUnescaped appends the unescaped form of a JSON string's content,
// which jsonString has already validated. Lone surrogates become U+FFFD, as
// in encoding/json.
func appendUnescaped(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(s) {
			return dst, ErrBadEscape
		}
		switch s[i+1] {
		case '"', '\\', '/':
			dst = append(dst, s[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(s) {
				return dst, ErrBadEscape
			}
			ru := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(ru) {
				ru2 := utf8.RuneError
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					ru2 = utf16.DecodeRune(ru, hex4(s[i+2:i+6]))
					if ru2 != utf8.RuneError {
						i += 6
					}
				}
				ru = ru2
			}
			dst = utf8.AppendRune(dst, ru)
			continue
		default:
			return dst, ErrBadEscape
		}
		i += 2
	}
	return dst, nil
}

// jsonLoneSurrogate reports whether s, the content of a JSON string with
// escapes that jsonScanString has checked, holds a \u escape of a
// surrogate that is not half of a pair (high then low), which
// appendUnescaped turns into U+FFFD. It allocates nothing.
func jsonLoneSurrogate(s []byte) bool {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			i++
			continue
		}
		if s[i+1] != 'u' {
			i += 2
			continue
		}
		r := hex4(s[i+2 : i+6])
		i += 6
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xdc00 || i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
			return true
		}
		if r2 := hex4(s[i+2 : i+6]); r2 < 0xdc00 || r2 > 0xdfff {
			return true
		}
		i += 6
	}
	return false
}

// jsonBinary decodes the base64 content of a JSON binary string (after the
// "\u0000" prefix) and appends the bytes to dst.
func jsonBinary(dst, s []byte, esc bool) ([]byte, error) {
	if esc {
		// Rare: the base64 text itself holds escapes (e.g. "\/"). Unescape
		// into a temporary first.
		u, err := appendUnescaped(nil, s)
		if err != nil {
			return dst, err
		}
		s = u
	}
	// jsonString has checked s (jsonBase64OK): standard, padded base64.
	enc := base64.StdEncoding
	n := enc.DecodedLen(len(s))
	start := len(dst)
	dst = growLen(dst, n)
	m, err := enc.Decode(dst[start:], s)
	if err != nil {
		return dst[:start], ErrBadBase64
	}
	return dst[:start+m], nil
}

// SWAR constants for base64Bad: x+lo sets a lane's top bit when its byte
// x is at least the range's first, x+hi when it is past its last. For a
// byte below 0x80 no carry leaves its lane; a byte >= 0x80 is flagged by
// its own top bit and may carry into the lanes above it, never below.
const (
	lanes20   = 0x2020202020202020
	b64LetLo  = 0x1F1F1F1F1F1F1F1F // 'a'..'z' (and 'A'..'Z', with 0x20 set)
	b64LetHi  = 0x0505050505050505
	b64DigLo  = 0x5151515151515151 // '/', '0'..'9'
	b64DigHi  = 0x4646464646464646
	b64PlusLo = 0x5555555555555555 // '+'
	b64PlusHi = 0x5454545454545454
)

// b64Invalid marks the bytes out of the base64 alphabet in b64Value.
const b64Invalid = 0xFF

// jsonScanBinary is the fast path of a binary string, whose opening quote
// is at b[q]: "\u0000", then standard base64 with its padding and no
// escape, then the closing quote. It returns the index of the closing
// quote and true for such a string, in one pass over the base64 (as fast
// as jsonScanString's, which it replaces), and false for any other string
// (not binary, escapes in the base64, malformed), which the caller scans
// with jsonScanString and, when binary, checks with jsonBase64OK: what is
// refused is refused there.
func jsonScanBinary(b []byte, q int) (end int, ok bool) {
	start := q + 7
	if start > len(b) || b[q+1] != '\\' || string(b[q+1:start]) != `\u0000` {
		return 0, false
	}
	i := start
	for i+8 <= len(b) {
		// base64Bad flags the first byte out of the alphabet exactly
		// (lanes above it may be wrong: a byte >= 0x80 carries).
		if m := base64Bad(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		i += 8
	}
	for i < len(b) && b64Value[b[i]] != b64Invalid {
		i++
	}
	j := i
	for j < len(b) && j-i < 2 && b[j] == '=' {
		j++
	}
	// At most two "=" and a multiple of 4 in all: "x=" and "x==" (one
	// character in the last group) are not base64.
	if j >= len(b) || b[j] != '"' || (j-start)%4 != 0 {
		return 0, false
	}
	return j, true
}

// jsonBase64OK reports whether s, the text of a JSON binary string after
// its "\u0000" prefix, is standard base64 with its padding: what
// Autobahn|Python (base64.b64decode), Autobahn|JS and this package write,
// and what Autobahn|Python's JSON serializer demands of every string it
// reads that starts with NUL (it drops its connection otherwise). Unpadded
// or otherwise malformed base64 is refused where the string is scanned, so
// that a message is refused whole, for every peer alike, rather than
// passed as it came to JSON peers and refused or converted for others.
// Escapes in the base64 (rare: "\/") are resolved first. Called only for
// strings that start with "\u0000".
func jsonBase64OK(s []byte) bool {
	if base64Padded(s) {
		return true
	}
	if bytes.IndexByte(s, '\\') < 0 {
		return false
	}
	u, err := appendUnescaped(nil, s)
	return err == nil && base64Padded(u)
}

// base64Padded reports whether s is standard base64 (RFC 4648 §4) with
// padding: a multiple of 4 characters, "=" only as the last one or two.
// Non-zero bits past the last byte are accepted, as by encoding/base64
// and Python's base64.b64decode.
func base64Padded(s []byte) bool {
	n := len(s)
	if n%4 != 0 {
		return false
	}
	if n == 0 {
		return true
	}
	body, last := s[:n-4], s[n-4:]
	// 16 bytes a round, without a branch per word: bad collects the lanes
	// of bytes that are >= 0x80 or in none of the alphabet's ranges.
	var bad uint64
	i := 0
	for ; i+16 <= len(body); i += 16 {
		bad |= base64Bad(binary.LittleEndian.Uint64(body[i:])) | base64Bad(binary.LittleEndian.Uint64(body[i+8:]))
	}
	if bad != 0 {
		return false
	}
	for ; i < len(body); i++ {
		if b64Value[body[i]] == b64Invalid {
			return false
		}
	}
	if b64Value[last[0]] == b64Invalid || b64Value[last[1]] == b64Invalid {
		return false
	}
	switch {
	case last[2] == '=':
		return last[3] == '='
	case b64Value[last[2]] == b64Invalid:
		return false
	}
	return last[3] == '=' || b64Value[last[3]] != b64Invalid
}

// base64Bad returns the top bit of the lanes of w whose bytes are not in
// the standard base64 alphabet ("=" is not): zero when all 8 are, else
// exact up to the first that is not (see the constants).
func base64Bad(w uint64) uint64 {
	l := w | lanes20
	in := ((l + b64LetLo) &^ (l + b64LetHi)) | ((w + b64DigLo) &^ (w + b64DigHi)) | ((w + b64PlusLo) &^ (w + b64PlusHi))
	return (w | ^in) & lanes80
}

// b64Value maps a byte to its standard base64 value, or b64Invalid.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Invalid
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// growLen extends b by n bytes (contents unspecified).
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
