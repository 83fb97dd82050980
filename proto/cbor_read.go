package proto

import (
	"math"
)

// CBOR reading (RFC 8949). Definite and indefinite lengths, chunked strings,
// half/single/double floats, and the bignum tags 2 and 3 are understood;
// other tags are read through (the tagged value is used as is).

// cbHead reads an initial byte and its argument. For indefinite lengths it
// returns indef and no argument.
func (r *rd) cbHead() (major byte, arg uint64, indef bool, err error) {
	major, _, arg, indef, err = r.cbHeadInfo()
	return
}

// cbHeadInfo is cbHead that also returns the additional information bits.
func (r *rd) cbHeadInfo() (major, info byte, arg uint64, indef bool, err error) {
	if err = r.need(1); err != nil {
		return
	}
	c := r.b[r.i]
	r.i++
	major = c >> 5
	info = c & 0x1f
	switch {
	case info < 24:
		arg = uint64(info)
	case info <= 27:
		arg, err = r.be(1 << (info - 24))
	case info == 31:
		// RFC 8949 §3.2: only strings, arrays, maps and the "break" (major
		// 7) have an indefinite form.
		if major == 0 || major == 1 || major == 6 {
			err = errCBORIndef
		}
		indef = true
	default:
		err = errCBORInfo
	}
	return
}

var (
	errCBORInfo   = errf("reserved CBOR additional information")
	errCBORIndef  = errf("malformed indefinite-length CBOR item")
	errCBORSimple = errf("unsupported CBOR simple value")
	errCBORTag    = errf("too many nested CBOR tags")
	errCBORBignum = errf("CBOR bignum tag must wrap a byte string")
)

// cbContainer reads the head of an array (major 4) or map (major 5).
func (r *rd) cbContainer(want byte) (n int, indef bool, err error) {
	save := r.i
	major, arg, ind, err := r.cbHead()
	if err != nil {
		return 0, false, err
	}
	for major == 6 { // skip tags on a container
		if major, arg, ind, err = r.cbHead(); err != nil {
			return 0, false, err
		}
	}
	if major != want {
		r.i = save
		if want == 4 {
			return 0, false, ErrNotArray
		}
		return 0, false, errNotMap
	}
	if ind {
		return -1, true, nil
	}
	per := 1
	if want == 5 {
		per = 2
	}
	n, err = r.count(arg, per)
	return n, false, err
}

func (r *rd) cbNext() (tok, error) {
	for tags := 0; ; tags++ {
		if tags > 8 {
			return tok{}, errCBORTag
		}
		major, info, arg, indef, err := r.cbHeadInfo()
		if err != nil {
			return tok{}, err
		}
		switch major {
		case 0:
			return tok{k: kInt, u: arg}, nil
		case 1:
			return tok{k: kInt, neg: true, u: arg}, nil
		case 2, 3:
			k := kBin
			if major == 3 {
				k = kStr
			}
			if indef {
				return r.cbChunked(major, k)
			}
			s, err := r.span(arg)
			return tok{k: k, s: s}, err
		case 4, 5:
			k := kArr
			per := 1
			if major == 5 {
				k, per = kMap, 2
			}
			if indef {
				return tok{k: k, n: -1}, nil
			}
			n, err := r.count(arg, per)
			return tok{k: k, n: n}, err
		case 6:
			if arg == 2 || arg == 3 { // bignum: a byte string magnitude
				// Read the byte string's head here rather than through
				// cbNext: a chain of nested bignum tags must not recurse.
				m, _, n, ind, err := r.cbHeadInfo()
				if err != nil {
					return tok{}, err
				}
				if m != 2 {
					return tok{}, errCBORBignum
				}
				var t tok
				if ind {
					t, err = r.cbChunked(2, kBin)
				} else {
					t.k = kBin
					t.s, err = r.span(n)
				}
				if err != nil {
					return tok{}, err
				}
				return r.cbBig(t, arg == 3)
			}
			continue // other tags: read the tagged item itself
		case 7:
			if indef {
				return tok{}, errCBORIndef // a stray "break"
			}
			return cbSimple(arg, info)
		}
	}
}

// cbChunked reads an indefinite-length string: definite chunks of the same
// major type up to a break. The returned token's s spans all chunks with
// their heads; tok.text and tok.bytes join them.
func (r *rd) cbChunked(major byte, k kind) (tok, error) {
	start := r.i
	for {
		if err := r.need(1); err != nil {
			return tok{}, err
		}
		if r.b[r.i] == 0xff {
			r.i++
			return tok{k: k, s: r.b[start : r.i-1 : r.i-1], chunk: true}, nil
		}
		m, arg, indef, err := r.cbHead()
		if err != nil {
			return tok{}, err
		}
		if m != major || indef {
			return tok{}, errCBORIndef
		}
		if _, err := r.span(arg); err != nil {
			return tok{}, err
		}
	}
}

// cbJoin appends the contents of the chunks spanned by s (see cbChunked).
func cbJoin(dst, s []byte) []byte {
	r := rd{b: s, ser: CBOR}
	for r.i < len(r.b) {
		_, arg, _, err := r.cbHead()
		if err != nil {
			return dst
		}
		p, err := r.span(arg)
		if err != nil {
			return dst
		}
		dst = append(dst, p...)
	}
	return dst
}

// cbBig turns a bignum's magnitude into an integer token when it fits in 64
// bits, or a kBig token (s = big-endian magnitude) when it does not.
func (r *rd) cbBig(t tok, neg bool) (tok, error) {
	mag := t.s
	if t.chunk {
		mag = cbJoin(nil, t.s)
	}
	for len(mag) > 0 && mag[0] == 0 {
		mag = mag[1:]
	}
	if len(mag) <= 8 {
		var u uint64
		for _, c := range mag {
			u = u<<8 | uint64(c)
		}
		return tok{k: kInt, neg: neg, u: u}, nil
	}
	return tok{k: kBig, neg: neg, s: mag}, nil
}

func cbSimple(arg uint64, info byte) (tok, error) {
	switch info {
	case 20:
		return tok{k: kBool}, nil
	case 21:
		return tok{k: kBool, b: true}, nil
	case 22, 23: // null, undefined
		return tok{k: kNull}, nil
	case 25:
		return tok{k: kFloat, f: halfToFloat(uint16(arg))}, nil
	case 26:
		return tok{k: kFloat, f: float64(math.Float32frombits(uint32(arg)))}, nil
	case 27:
		return tok{k: kFloat, f: math.Float64frombits(arg)}, nil
	}
	return tok{}, errCBORSimple
}

// halfToFloat converts an IEEE 754 half-precision value (RFC 8949 App. D).
func halfToFloat(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		return -v
	}
	return v
}
