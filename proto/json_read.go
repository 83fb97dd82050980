package proto

import (
	"bytes"
	"encoding/base64"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON reading. The message head is scanned by hand: no reflection, no
// allocation. Strings are returned as the raw text between the quotes plus a
// flag telling whether it holds escapes, so that the common escape-free case
// is zero-copy.

func (r *rd) jsonWS() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

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
func (r *rd) jsonLit(lit string) error {
	if len(r.b)-r.i < len(lit) {
		return ErrTruncated
	}
	if string(r.b[r.i:r.i+len(lit)]) != lit {
		return ErrBadSyntax
	}
	r.i += len(lit)
	return nil
}

// jsonString scans a string starting at the opening quote. It validates
// escapes and UTF-8, and classifies "\u0000"-prefixed strings as binary.
func (r *rd) jsonString(t *tok) error {
	b := r.b
	i := r.i + 1
	start := i
	esc, high := false, false
	for {
		if i >= len(b) {
			return ErrTruncated
		}
		c := b[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return ErrBadSyntax
		}
		if c >= 0x80 {
			high = true
		}
		if c == '\\' {
			esc = true
			if i+1 >= len(b) {
				return ErrTruncated
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			case 'u':
				if i+6 > len(b) {
					return ErrTruncated
				}
				for _, h := range b[i+2 : i+6] {
					if hexVal(h) < 0 {
						return ErrBadEscape
					}
				}
				i += 6
				continue
			default:
				return ErrBadEscape
			}
		}
		i++
	}
	s := b[start:i:i]
	r.i = i + 1
	if high && !utf8.Valid(s) {
		return ErrBadUTF8
	}
	// WAMP §Binary conversion of JSON strings: a string whose first
	// character is NUL carries base64 bytes.
	if len(s) >= 6 && string(s[:6]) == `\u0000` {
		// esc tells whether the base64 text itself holds escapes (rare).
		s = s[6:]
		t.set(kBin, false, esc && bytes.IndexByte(s, '\\') >= 0, 0, 0, s)
		return nil
	}
	t.set(kStr, false, esc, 0, 0, s)
	return nil
}

// jsonNumber scans a number per RFC 8259 §6. Integers become kInt (or kBig
// beyond 64 bits); anything with a fraction or exponent is kFloat.
func (r *rd) jsonNumber(t *tok) error {
	b := r.b
	i := r.i
	start := i
	neg := false
	if b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) {
		return ErrTruncated
	}
	digits := i
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return ErrBadNumber
	}
	intEnd := i
	isFloat := false
	if i < len(b) && b[i] == '.' {
		isFloat = true
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return ErrBadNumber
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
			return ErrBadNumber
		}
	}
	r.i = i
	if isFloat {
		f, err := parseFloat(b[start:i])
		if err != nil {
			return ErrBadNumber
		}
		t.set(kFloat, false, false, 0, f, nil)
		return nil
	}
	u, ok := parseDigits(b[digits:intEnd])
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
	enc := base64.StdEncoding
	// Accept unpadded base64 too; some clients strip the padding.
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	n := enc.DecodedLen(len(s))
	start := len(dst)
	dst = growLen(dst, n)
	m, err := enc.Decode(dst[start:], s)
	if err != nil {
		return dst[:start], ErrBadBase64
	}
	return dst[:start+m], nil
}

// growLen extends b by n bytes (contents unspecified).
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
