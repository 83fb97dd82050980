package proto

import (
	"encoding/binary"
	"math"
	"math/big"
	"unicode/utf8"
)

// Transcode appends the value r, converted to serializer to, to dst. Binary
// values follow the WAMP JSON convention; integers stay exact wherever the
// target can carry them (MsgPack cannot go beyond 64 bits: such values
// become the nearest float64). Dates follow each serializer's convention
// (see timestamp.go). A value with no JSON form (NaN, infinity, a text
// string starting with NUL, a date beyond the year 9999) is an error when
// the target is JSON; map keys must be strings in every serializer.
//
// The value is checked and re-encoded even when r is already in to, so the
// output is always well formed, and in its shortest form but for the heads
// of containers longer than 4 KiB whose length the input did not declare
// (JSON, CBOR indefinite: see patchHead); use [Encoder] to
// pass trusted, decoded raw values through untouched. On error dst is
// returned as it was. Transcode allocates.
func Transcode(dst []byte, to Serializer, r Raw) ([]byte, error) {
	if !to.Valid() || !r.Ser.Valid() {
		return dst, ErrBadSerializer
	}
	w := wr{b: dst, ser: to}
	var sc []byte
	src := rd{b: r.B, ser: r.Ser, dates: true}
	if err := transcodeValue(&src, &w, 0, &sc); err != nil {
		return dst, err
	}
	if err := src.end(); err != nil {
		return dst, err
	}
	return w.b, nil
}

// transcodeValue reads one value from r and writes it to w.
// depth is the number of containers around the value; a container at depth
// MaxDepth is refused.
func transcodeValue(r *rd, w *wr, depth int, sc *[]byte) error {
	if w.max > 0 && len(w.b) > w.max {
		return ErrTooLarge
	}
	if r.ser == JSON {
		r.jsonWS()
	}
	cbor := r.ser == CBOR && w.ser == CBOR
	if cbor && r.i+1 < len(r.b) && r.b[r.i] == cborTagDate && r.b[r.i+1]>>5 == 3 {
		// A date text (tag 0 on a text string, the only tag on it) passes
		// to CBOR peers as it came (cbTagKept), also in a payload
		// normalized for something else: cbNext reads the tag through.
		w.b = append(w.b, cborTagDate)
	}
	var t tok
	err := r.next(&t)
	if err != nil {
		return err
	}
	switch t.k {
	case kUndef:
		if cbor { // CBOR's own undefined passes to CBOR peers
			w.b = append(w.b, cborUndefined)
			break
		}
		w.null() // as JSON.stringify writes it in a list
	case kNull:
		w.null()
	case kBool:
		w.bool(t.u != 0)
	case kInt:
		if t.esc && r.dates && w.ser != JSON { // a CBOR epoch date (tag 1); to CBOR too
			if sec, ok := epochOfInt(&t); ok {
				return w.time(sec, 0)
			}
		}
		if t.neg {
			w.neg(t.u)
		} else {
			w.uint(t.u)
		}
	case kBig:
		v, err := bigOf(&t, r.ser)
		if err != nil {
			return err
		}
		return w.big(v)
	case kFloat:
		if t.esc && r.dates && w.ser == MsgPack { // a CBOR epoch date (tag 1)
			if sec, nsec, ok := epochOfFloat(t.f); ok {
				return w.time(sec, nsec)
			}
		}
		if t.esc && r.dates && w.ser == CBOR && t.f >= minDatetime && t.f < endRFC3339 {
			w.b = append(w.b, cborTagEpoch) // the float as it came, as w.time tags one
		}
		return w.float(t.f)
	case kTime:
		sec, nsec := mpTime(t.s)
		return w.time(sec, nsec)
	case kStr:
		*sc = (*sc)[:0]
		s, err := t.appendText(*sc, r.ser)
		if err != nil {
			return err
		}
		*sc = s
		if r.ser != JSON && !utf8.Valid(s) {
			return ErrBadUTF8
		}
		return w.str(s)
	case kBin:
		*sc = (*sc)[:0]
		p, err := t.appendBytes(*sc, r.ser)
		if err != nil {
			return err
		}
		*sc = p
		w.bin(p)
	case kArr, kMap:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		return transcodeContainer(r, w, &t, depth, sc)
	default:
		return ErrUnsupported
	}
	return nil
}

// transcodeContainer transcodes the elements of the container whose head t
// was just read, and its head. When the source does not declare the length
// (JSON, CBOR indefinite) and the target needs it up front (MsgPack, CBOR),
// room for the longest head is reserved and the head is written, and the
// elements moved up to it, once they are counted: one pass over the input,
// where counting ahead would skip every nested container once per level.
// A map member whose value is JavaScript undefined is dropped (as
// JSON.stringify does), but for CBOR to CBOR, which keeps its own
// undefined; the head is then rewritten with the smaller count.
func transcodeContainer(r *rd, w *wr, t *tok, depth int, sc *[]byte) error {
	isMap := t.k == kMap
	close := byte(']')
	if isMap {
		close = '}'
	}
	start, later := len(w.b), t.u == openLen && w.ser != JSON
	switch {
	case later:
		var room [maxHead]byte
		w.b = append(w.b, room[:]...)
	case isMap:
		w.mapH(int(t.u)) // JSON writes no length
	default:
		w.arr(int(t.u))
	}
	headLen := len(w.b) - start
	s := seqOf(t)
	n := 0 // elements written
	for {
		ok, err := r.more(&s, close)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if isMap {
			ks, err := transcodeKey(r, sc)
			if err != nil {
				return err
			}
			if (r.ser != CBOR || w.ser != CBOR) && r.undefined() {
				continue // a CBOR peer gets CBOR's undefined (transcodeValue)
			}
			if n > 0 {
				w.comma()
			}
			if err := w.str(ks); err != nil {
				return err
			}
			w.colon()
		} else if n > 0 {
			w.comma()
		}
		if err := transcodeValue(r, w, depth+1, sc); err != nil {
			return err
		}
		n++
	}
	if w.ser != JSON && (later || uint64(n) != t.u) {
		w.patchHead(start, headLen, isMap, n)
	}
	if isMap {
		w.endMap()
	} else {
		w.endArr()
	}
	return nil
}

// transcodeKey reads a map key, which must be a string, and the colon
// after it, and returns its text (in sc).
func transcodeKey(r *rd, sc *[]byte) ([]byte, error) {
	var k tok
	if err := r.next(&k); err != nil {
		if err == ErrBadBase64 && r.ser == JSON {
			return nil, ErrKeyBinary // its base64 is not a key's business
		}
		return nil, err
	}
	if k.k != kStr {
		if k.k == kBin && r.ser == JSON {
			return nil, ErrKeyBinary
		}
		return nil, ErrKeyNotString
	}
	ks, err := k.appendText((*sc)[:0], r.ser)
	if err != nil {
		return nil, err
	}
	*sc = ks
	if r.ser != JSON && !utf8.Valid(ks) {
		return nil, ErrBadUTF8
	}
	if len(ks) == len(protoKey) && string(ks) == protoKey {
		// Refused as every decoder refuses it (skipKey), its escapes and
		// chunks read: the router's input never holds it, but a Raw of
		// another serializer the Go client passes on did, written to
		// the router, which ended the session.
		return nil, ErrKeyNotString
	}
	if err := r.colon(); err != nil {
		return nil, err
	}
	return ks, nil
}

// The heads of CBOR's tag 0 (a date/time text) and of its undefined
// (simple value 23), which CBOR peers get as they came even in a payload
// the router normalizes for something else (see Raw.Normalize): a tag it
// strips, a chain of tags.
const (
	cborTagDate   = 0xc0
	cborUndefined = 0xf7
)

// maxHead is the longest MsgPack or CBOR array/map head for a length that
// fits in 32 bits; a container cannot have more elements than its input has
// bytes.
const maxHead = 5

// maxMoved bounds the elements patchHead moves to give a container its
// shortest head. Past it the head is written in the room reserved, in a
// longer form: moving every nested container's body once per level would
// cost the input's size times its depth (a 16 MiB message nested 99 deep:
// 300 ms of a shard, against 10 for the same bytes flat).
const maxMoved = 4 << 10

// testHookMoved, set by tests only, is told the bytes patchHead moves.
var testHookMoved func(n int)

// patchHead writes the head of a container of n elements at w.b[start:],
// where reserved bytes were set aside for it (maxHead, or a head written for
// a larger count), moving the elements to follow it. The head is appended
// first and then moved into place, so that no buffer escapes. Elements
// longer than maxMoved stay where they are, under a head of the reserved
// length (MsgPack's array 32, CBOR's 4-byte length: valid, not shortest).
func (w *wr) patchHead(start, reserved int, isMap bool, n int) {
	body := len(w.b) - start - reserved
	if body > maxMoved && w.headIn(w.b[start:start+reserved], isMap, n) {
		return
	}
	if testHookMoved != nil {
		testHookMoved(body)
	}
	at := len(w.b)
	if isMap {
		w.mapH(n)
	} else {
		w.arr(n)
	}
	var head [9]byte
	hl := copy(head[:], w.b[at:])
	// hl > reserved only for 2^32 elements or more (CBOR) after maxHead
	// was reserved; the appended head leaves room to move the body up then.
	copy(w.b[start+hl:], w.b[start+reserved:start+reserved+body])
	copy(w.b[start:], head[:hl])
	w.b = w.b[:start+hl+body]
}

// Integers beyond 64 bits are converted through math/big, whose decimal
// conversions take time quadratic in the length (a million digits: two
// seconds). Beyond 8192 bits of magnitude they are refused, before any
// conversion: maxBigDigits bounds the decimal digits read.
const (
	maxBigBytes  = 1024
	maxBigDigits = 2467 // of 2^8192 - 1
)

var errBigTooLarge = errf("integer beyond 8192 bits cannot be converted")

// bigOf converts a kBig token: JSON decimal digits or a CBOR bignum
// magnitude (value -1-m when negative).
func bigOf(t *tok, ser Serializer) (*big.Int, error) {
	v := new(big.Int)
	if ser == JSON {
		if len(t.s) > maxBigDigits {
			return nil, errBigTooLarge
		}
		v.SetString(string(t.s), 10)
		if v.BitLen() > 8*maxBigBytes {
			return nil, errBigTooLarge
		}
		if t.neg {
			v.Neg(v)
		}
		return v, nil
	}
	if len(t.s) > maxBigBytes {
		return nil, errBigTooLarge
	}
	v.SetBytes(t.s)
	if t.neg {
		v.Add(v, big.NewInt(1))
		v.Neg(v)
		if v.BitLen() > 8*maxBigBytes {
			// -2^8192 (a magnitude of 1024 bytes of 0xff): one past the
			// JSON reader's bound, so its 2,467 digits would be refused
			// by every reader of this package (a Go client ended its
			// session on them).
			return nil, errBigTooLarge
		}
	}
	return v, nil
}

// headIn writes, in dst, the head of a container of n elements in exactly
// len(dst) bytes, and reports whether that length has a form for n.
func (w *wr) headIn(dst []byte, isMap bool, n int) bool {
	u := uint64(n)
	switch w.ser {
	case MsgPack:
		switch {
		case len(dst) == 1 && u < 16:
			dst[0] = 0x90 | byte(u)
			if isMap {
				dst[0] = 0x80 | byte(u)
			}
		case len(dst) == 3 && u <= math.MaxUint16:
			dst[0] = 0xdc
			if isMap {
				dst[0] = 0xde
			}
			binary.BigEndian.PutUint16(dst[1:], uint16(u))
		case len(dst) == 5 && u <= math.MaxUint32:
			dst[0] = 0xdd
			if isMap {
				dst[0] = 0xdf
			}
			binary.BigEndian.PutUint32(dst[1:], uint32(u))
		default:
			return false
		}
	case CBOR:
		m := byte(4 << 5)
		if isMap {
			m = 5 << 5
		}
		switch {
		case len(dst) == 1 && u < 24:
			dst[0] = m | byte(u)
		case len(dst) == 2 && u <= math.MaxUint8:
			dst[0], dst[1] = m|24, byte(u)
		case len(dst) == 3 && u <= math.MaxUint16:
			dst[0] = m | 25
			binary.BigEndian.PutUint16(dst[1:], uint16(u))
		case len(dst) == 5 && u <= math.MaxUint32:
			dst[0] = m | 26
			binary.BigEndian.PutUint32(dst[1:], uint32(u))
		case len(dst) == 9:
			dst[0] = m | 27
			binary.BigEndian.PutUint64(dst[1:], u)
		default:
			return false
		}
	default:
		return false
	}
	return true
}
