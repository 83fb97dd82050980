package wire

import (
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// Fixed-width integers. Every id and timestamp the load tool patches into a
// pre-encoded message lies in [FixedMin, FixedMax): in MsgPack (0xcf) and
// CBOR (0x1b) such a value always takes 8 bytes after the tag, and in JSON
// always 16 digits, so it can be overwritten in place without moving a
// byte. FixedMax is 2^53, the largest WAMP id.
const (
	FixedMin = 1_000_000_000_000_000
	FixedMax = 1 << 53
)

// ErrNotFixed means a template field is not a fixed-width integer.
var ErrNotFixed = errors.New("wire: template field is not a fixed-width integer (use values in [FixedMin, FixedMax))")

// Field is the place of a fixed-width integer in a framed message: the
// offset of its value bytes and their count (0: no such field).
type Field struct {
	Off, N int
}

// Template is a framed (and, for a WebSocket client, masked) message with
// up to two fixed-width integer fields that AppendTo patches per copy: a
// request id and a timestamp. The zero Field means absent.
type Template struct {
	B      []byte
	Ser    proto.Serializer
	ID     Field
	Stamp  Field
	mask   [4]byte
	masked bool
	start  int // offset of the payload in B (masking phase origin)
}

// FieldAt returns the offsets of the value at path in msg: path[0] is an
// index into the message's top-level array; a second index goes into the
// array found there (e.g. {4, 0}: the first argument of a PUBLISH).
func FieldAt(ser proto.Serializer, msg []byte, path ...int) (start, end int, err error) {
	s := NewScanner(ser, msg)
	for d, idx := range path {
		if _, err = s.Array(); err != nil {
			return 0, 0, err
		}
		for i := 0; i < idx; i++ {
			if err = s.Skip(); err != nil {
				return 0, 0, err
			}
		}
		if d == len(path)-1 {
			return s.Elem()
		}
	}
	return 0, 0, ErrScan
}

// fixedField maps the value at [start, end) of msg to its patchable bytes.
func fixedField(ser proto.Serializer, msg []byte, start, end int) (Field, error) {
	switch ser {
	case proto.MsgPack:
		if end-start == 9 && msg[start] == 0xcf {
			return Field{start + 1, 8}, nil
		}
	case proto.CBOR:
		if end-start == 9 && msg[start] == 0x1b {
			return Field{start + 1, 8}, nil
		}
	case proto.JSON:
		if end-start == 16 {
			return Field{start, 16}, nil
		}
	}
	return Field{}, ErrNotFixed
}

// NewTemplate frames msg with f and locates its fixed-width fields: idPath
// and stampPath are FieldAt paths (nil: no such field).
func NewTemplate(f *Framer, msg []byte, idPath, stampPath []int) (*Template, error) {
	t := &Template{Ser: f.Ser}
	t.B = f.Append(nil, msg)
	t.start = len(t.B) - len(msg)
	if f.Mask != nil {
		t.mask, t.masked = *f.Mask, true
	}
	for _, p := range []struct {
		path []int
		dst  *Field
	}{{idPath, &t.ID}, {stampPath, &t.Stamp}} {
		if p.path == nil {
			continue
		}
		s, e, err := FieldAt(f.Ser, msg, p.path...)
		if err != nil {
			return nil, err
		}
		fd, err := fixedField(f.Ser, msg, s, e)
		if err != nil {
			return nil, err
		}
		fd.Off += t.start
		*p.dst = fd
	}
	return t, nil
}

// AppendTo appends a copy of the template to dst with id and stamp written
// into their fields (each must be in [FixedMin, FixedMax); a value for an
// absent field is ignored). It allocates only when dst grows.
func (t *Template) AppendTo(dst []byte, id, stamp uint64) []byte {
	off := len(dst)
	dst = append(dst, t.B...)
	if t.ID.N > 0 {
		t.put(dst[off:], t.ID, id)
	}
	if t.Stamp.N > 0 {
		t.put(dst[off:], t.Stamp, stamp)
	}
	return dst
}

func (t *Template) put(b []byte, f Field, v uint64) {
	r := b[f.Off : f.Off+f.N]
	PutFixed(t.Ser, r, v)
	if t.masked {
		MaskBytes(r, t.mask, f.Off-t.start)
	}
}

// PutFixed writes v into a fixed-width field r: 8 big-endian bytes for
// MsgPack and CBOR, len(r) decimal digits for JSON.
func PutFixed(ser proto.Serializer, r []byte, v uint64) {
	if ser != proto.JSON {
		for i := 7; i >= 0; i-- {
			r[i] = byte(v)
			v >>= 8
		}
		return
	}
	for i := len(r) - 1; i >= 0; i-- {
		r[i] = byte('0' + v%10)
		v /= 10
	}
}
