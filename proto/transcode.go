package proto

import (
	"math/big"
	"unicode/utf8"
)

// Transcode appends the value r, converted to serializer to, to dst. Binary
// values follow the WAMP JSON convention; integers stay exact wherever the
// target can carry them (MsgPack cannot go beyond 64 bits: such values
// become the nearest float64). A value with no JSON form (NaN, infinity, a
// text string starting with NUL) is an error when the target is JSON; map
// keys must be strings in every serializer.
//
// The value is checked and re-encoded even when r is already in to, so the
// output is always well formed and in its shortest form; use [Encoder] to
// pass trusted, decoded raw values through untouched. On error dst is
// returned as it was. Transcode allocates.
func Transcode(dst []byte, to Serializer, r Raw) ([]byte, error) {
	if !to.Valid() || !r.Ser.Valid() {
		return dst, ErrBadSerializer
	}
	w := wr{b: dst, ser: to}
	var sc []byte
	src := rd{b: r.B, ser: r.Ser}
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
	if r.ser == JSON {
		r.jsonWS()
	}
	before := *r
	var t tok
	err := r.next(&t)
	if err != nil {
		return err
	}
	switch t.k {
	case kNull:
		w.null()
	case kBool:
		w.bool(t.u != 0)
	case kInt:
		if t.neg {
			w.neg(t.u)
		} else {
			w.uint(t.u)
		}
	case kBig:
		return w.big(bigOf(&t, r.ser))
	case kFloat:
		return w.float(t.f)
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
		n := int(t.u)
		if t.u == openLen {
			if n, err = countOpen(before, depth); err != nil {
				return err
			}
		}
		return transcodeContainer(r, w, &t, n, depth, sc)
	default:
		return ErrUnsupported
	}
	return nil
}

func transcodeContainer(r *rd, w *wr, t *tok, n, depth int, sc *[]byte) error {
	isMap := t.k == kMap
	close := byte(']')
	if isMap {
		close = '}'
		w.mapH(n)
	} else {
		w.arr(n)
	}
	s := seqOf(t)
	for i := 0; ; i++ {
		ok, err := r.more(&s, close)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if i > 0 {
			w.comma()
		}
		if isMap {
			var k tok
			err := r.next(&k)
			if err != nil {
				return err
			}
			if k.k != kStr {
				return ErrKeyNotString
			}
			*sc = (*sc)[:0]
			ks, err := k.appendText(*sc, r.ser)
			if err != nil {
				return err
			}
			*sc = ks
			if r.ser != JSON && !utf8.Valid(ks) {
				return ErrBadUTF8
			}
			if err := w.str(ks); err != nil {
				return err
			}
			if err := r.colon(); err != nil {
				return err
			}
			w.colon()
		}
		if err := transcodeValue(r, w, depth+1, sc); err != nil {
			return err
		}
	}
	if isMap {
		w.endMap()
	} else {
		w.endArr()
	}
	return nil
}

// countOpen counts the elements (or entries) of a container whose length is
// not declared (JSON, CBOR indefinite), by skipping over them on a copy of
// the reader positioned at the container's head.
func countOpen(r rd, depth int) (int, error) {
	var t tok
	err := r.next(&t)
	if err != nil {
		return 0, err
	}
	close := byte(']')
	if t.k == kMap {
		close = '}'
	}
	s := seqOf(&t)
	n := 0
	for {
		ok, err := r.more(&s, close)
		if err != nil {
			return 0, err
		}
		if !ok {
			return n, nil
		}
		if t.k == kMap {
			if err := r.skipKey(); err != nil {
				return 0, err
			}
		}
		if err := r.skipValue(depth + 1); err != nil {
			return 0, err
		}
		n++
	}
}

// bigOf converts a kBig token: JSON decimal digits or a CBOR bignum
// magnitude (value -1-m when negative).
func bigOf(t *tok, ser Serializer) *big.Int {
	v := new(big.Int)
	if ser == JSON {
		v.SetString(string(t.s), 10)
		if t.neg {
			v.Neg(v)
		}
		return v
	}
	v.SetBytes(t.s)
	if t.neg {
		v.Add(v, big.NewInt(1))
		v.Neg(v)
	}
	return v
}
