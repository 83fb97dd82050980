package proto

import (
	"encoding/binary"
	"math"
	"strconv"
)

// MsgPack reading (msgpack spec, 2017). Every declared length is checked
// against the bytes left before it is used.

func parseFloat(b []byte) (float64, error) { return strconv.ParseFloat(string(b), 64) }

// need returns an error unless n more bytes are available.
func (r *rd) need(n int) error {
	if n < 0 || len(r.b)-r.i < n {
		return ErrTruncated
	}
	return nil
}

func (r *rd) be(n int) (uint64, error) {
	if err := r.need(n); err != nil {
		return 0, err
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	default:
		return binary.BigEndian.Uint64(p), nil
	}
}

// span returns the next n bytes, which the input must hold.
func (r *rd) span(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.i) {
		return nil, ErrLength
	}
	s := r.b[r.i : r.i+int(n) : r.i+int(n)]
	r.i += int(n)
	return s, nil
}

// count checks a declared element count: every element needs at least one
// byte, so a count larger than the bytes left is a lie.
func (r *rd) count(n uint64, per int) (int, error) {
	if n > uint64(len(r.b)-r.i)/uint64(per) {
		return 0, ErrLength
	}
	return int(n), nil
}

func (r *rd) mpArrayLen() (int, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	c := r.b[r.i]
	switch {
	case c >= 0x90 && c <= 0x9f:
		r.i++
		return int(c & 0x0f), nil
	case c == 0xdc || c == 0xdd:
		r.i++
		n, err := r.be(2 << (c - 0xdc))
		if err != nil {
			return 0, err
		}
		return r.count(n, 1)
	}
	return 0, ErrNotArray
}

func (r *rd) mpMapLen() (int, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	c := r.b[r.i]
	switch {
	case c >= 0x80 && c <= 0x8f:
		r.i++
		return int(c & 0x0f), nil
	case c == 0xde || c == 0xdf:
		r.i++
		n, err := r.be(2 << (c - 0xde))
		if err != nil {
			return 0, err
		}
		return r.count(n, 2)
	}
	return 0, errNotMap
}

func (r *rd) mpNext(t *tok) error {
	if err := r.need(1); err != nil {
		return err
	}
	c := r.b[r.i]
	r.i++
	switch {
	case c <= 0x7f:
		t.set(kInt, false, false, uint64(c), 0, nil)
		return nil
	case c >= 0xe0:
		t.set(kInt, true, false, uint64(^int64(int8(c))), 0, nil)
		return nil
	case c >= 0x80 && c <= 0x8f:
		n, err := r.count(uint64(c&0x0f), 2)
		t.set(kMap, false, false, uint64(n), 0, nil)
		return err
	case c >= 0x90 && c <= 0x9f:
		n, err := r.count(uint64(c&0x0f), 1)
		t.set(kArr, false, false, uint64(n), 0, nil)
		return err
	case c >= 0xa0 && c <= 0xbf:
		s, err := r.span(uint64(c & 0x1f))
		t.set(kStr, false, false, 0, 0, s)
		return err
	}
	switch c {
	case 0xc0:
		t.set(kNull, false, false, 0, 0, nil)
		return nil
	case 0xc2:
		t.set(kBool, false, false, 0, 0, nil)
		return nil
	case 0xc3:
		t.set(kBool, false, false, 1, 0, nil)
		return nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		n, err := r.be(1 << (c - 0xc4))
		if err != nil {
			return err
		}
		s, err := r.span(n)
		t.set(kBin, false, false, 0, 0, s)
		return err
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		n, err := r.be(1 << (c - 0xd9))
		if err != nil {
			return err
		}
		s, err := r.span(n)
		t.set(kStr, false, false, 0, 0, s)
		return err
	case 0xca:
		v, err := r.be(4)
		t.set(kFloat, false, false, 0, float64(math.Float32frombits(uint32(v))), nil)
		return err
	case 0xcb:
		v, err := r.be(8)
		t.set(kFloat, false, false, 0, math.Float64frombits(v), nil)
		return err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := r.be(1 << (c - 0xcc))
		t.set(kInt, false, false, v, 0, nil)
		return err
	case 0xd0, 0xd1, 0xd2, 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.be(n)
		if err != nil {
			return err
		}
		var s int64
		switch n {
		case 1:
			s = int64(int8(v))
		case 2:
			s = int64(int16(v))
		case 4:
			s = int64(int32(v))
		default:
			s = int64(v)
		}
		intTok(t, s)
		return nil
	case 0xdc, 0xdd:
		n, err := r.be(2 << (c - 0xdc))
		if err != nil {
			return err
		}
		cnt, err := r.count(n, 1)
		t.set(kArr, false, false, uint64(cnt), 0, nil)
		return err
	case 0xde, 0xdf:
		n, err := r.be(2 << (c - 0xde))
		if err != nil {
			return err
		}
		cnt, err := r.count(n, 2)
		t.set(kMap, false, false, uint64(cnt), 0, nil)
		return err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16
		p, err := r.span(1 + (1 << (c - 0xd4)))
		if err != nil {
			return err
		}
		if c == 0xd4 && p[0] == 0 { // JavaScript undefined (see kUndef)
			t.set(kUndef, false, false, 0, 0, nil)
			return nil
		}
		if p[0] == extTimestamp {
			// fixext 4 and 8 are timestamp 32 and 64; other lengths are
			// no timestamp (msgpackr writes an invalid Date as fixext 1,
			// which msgpack-python refuses).
			return mpTimestamp(t, p[1:], c == 0xd6 || c == 0xd7)
		}
		t.set(kInvalid, false, false, 0, 0, nil)
		return errExt
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		n, err := r.be(1 << (c - 0xc7))
		if err != nil {
			return err
		}
		p, err := r.span(n + 1)
		if err != nil {
			return err
		}
		if p[0] == extTimestamp { // timestamp 96 is ext 8 of 12 bytes
			return mpTimestamp(t, p[1:], c == 0xc7 && n == 12)
		}
		t.set(kInvalid, false, false, 0, 0, nil)
		return errExt
	}
	return errNeverUsed // 0xc1
}

// extTimestamp is the MsgPack extension type of timestamps, -1.
const extTimestamp = 0xff

// mpTimestamp makes t a timestamp token of the extension data p, which
// came in one of the timestamp formats when format is set.
func mpTimestamp(t *tok, p []byte, format bool) error {
	t.set(kInvalid, false, false, 0, 0, nil)
	if !format {
		return errTimestamp
	}
	// Timestamp 32 has no nanoseconds; the others must hold fewer than a
	// second's worth, as the spec says and msgpack-python checks (a
	// ValueError: autobahn-python drops the connection).
	if _, ns := mpTime(p); ns >= 1e9 {
		return errTimestamp
	}
	t.set(kTime, false, false, 0, 0, p)
	return nil
}

// mpTime decodes the data of a timestamp that mpTimestamp accepted:
// seconds and nanoseconds since the Unix epoch.
func mpTime(p []byte) (sec int64, nsec uint32) {
	switch len(p) {
	case 4:
		return int64(binary.BigEndian.Uint32(p)), 0
	case 8:
		v := binary.BigEndian.Uint64(p)
		return int64(v & (1<<34 - 1)), uint32(v >> 34)
	}
	return int64(binary.BigEndian.Uint64(p[4:])), binary.BigEndian.Uint32(p)
}

var (
	errExt       = errf("msgpack extension types are not supported in WAMP messages, except type -1 (timestamp) and fixext 1 of type 0 (JavaScript undefined)")
	errTimestamp = errf("msgpack timestamp (extension type -1) must be fixext 4, fixext 8 or ext 8 of 12 bytes, with nanoseconds below 10^9")
	errNeverUsed = errf("msgpack byte 0xc1 is never used")
)

// intTok makes t an integer token from a signed value.
func intTok(t *tok, s int64) {
	if s < 0 {
		t.set(kInt, true, false, uint64(^s), 0, nil)
		return
	}
	t.set(kInt, false, false, uint64(s), 0, nil)
}
