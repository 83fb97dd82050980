package proto

import (
	"math"
	"unicode/utf8"
)

// CBOR reading (RFC 8949). Definite and indefinite lengths, chunked strings,
// half/single/double floats, and the bignum tags 2 and 3 are understood;
// other tags are read through (the tagged value is used as is), tag 1 on a
// number being marked for the transcoder (see tok.esc). The content of the
// tags cbor2 decodes is checked first (cbor_tags.go).

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
	for major == 6 { // skip tags on a container (checked: cbor_tags.go)
		if cbTagChecked(arg) {
			if err := r.cbCheckTag(arg); err != nil {
				return 0, false, err
			}
		}
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

func (r *rd) cbNext(t *tok) error {
	epoch := false // the innermost tag is 1, an epoch-based date/time
	for tags := 0; ; tags++ {
		if tags > 8 {
			return errCBORTag
		}
		major, info, arg, indef, err := r.cbHeadInfo()
		if err != nil {
			return err
		}
		switch major {
		case 0:
			t.set(kInt, false, epoch, arg, 0, nil)
			return nil
		case 1:
			t.set(kInt, true, epoch, arg, 0, nil)
			return nil
		case 2, 3:
			k := kBin
			if major == 3 {
				k = kStr
			}
			if indef {
				return r.cbChunked(t, major, k)
			}
			s, err := r.span(arg)
			t.set(k, false, false, 0, 0, s)
			return err
		case 4, 5:
			k := kArr
			per := 1
			if major == 5 {
				k, per = kMap, 2
			}
			if indef {
				t.set(k, false, false, openLen, 0, nil)
				return nil
			}
			n, err := r.count(arg, per)
			t.set(k, false, false, uint64(n), 0, nil)
			return err
		case 6:
			if tags > 0 || !r.cbTagKept(arg) {
				r.norm = true // see cbor_norm.go
			}
			if arg == 2 || arg == 3 { // bignum: a byte string magnitude
				// Read the byte string's head here rather than through
				// cbNext: a chain of nested bignum tags must not recurse.
				m, _, n, ind, err := r.cbHeadInfo()
				if err != nil {
					return err
				}
				if m != 2 {
					return errCBORBignum
				}
				if ind {
					err = r.cbChunked(t, 2, kBin)
				} else {
					var s []byte
					s, err = r.span(n)
					t.set(kBin, false, false, 0, 0, s)
					if n == 0 {
						// An empty magnitude is 0 (RFC 8949 §3.4.3), but
						// node-cbor (Autobahn|JS's CBOR) cannot convert
						// it ("Cannot convert 0x to a BigInt") and hands
						// the application a Tagged object: CBOR peers get
						// the integer it is, as for a chunked one.
						r.norm = true
					}
				}
				if err != nil {
					return err
				}
				r.cbBig(t, arg == 3)
				return nil
			}
			if cbTagChecked(arg) {
				if err := r.cbCheckTag(arg); err != nil {
					return err
				}
			}
			epoch = arg == 1
			continue // other tags: read the tagged item itself
		case 7:
			if indef {
				return errCBORIndef // a stray "break"
			}
			return cbSimple(t, arg, info, epoch)
		}
	}
}

// cbChunked reads an indefinite-length string: definite chunks of the same
// major type up to a break. The returned token's s spans all chunks with
// their heads (esc set); tok.text, appendText and appendBytes join them.
func (r *rd) cbChunked(t *tok, major byte, k kind) error {
	start := r.i
	for {
		if err := r.need(1); err != nil {
			return err
		}
		if r.b[r.i] == 0xff {
			r.i++
			t.set(k, false, true, 0, 0, r.b[start:r.i-1:r.i-1])
			// cbor-x (wampy's CBOR) cannot decode an indefinite-length
			// string at all ("Indefinite length not supported for byte
			// or text strings"), and wampy closes its session: a
			// payload holding one reaches CBOR peers with the chunks
			// joined, as a definite string (see Raw.Normalize).
			r.norm = true
			return nil
		}
		m, arg, indef, err := r.cbHead()
		if err != nil {
			return err
		}
		if m != major || indef {
			return errCBORIndef
		}
		p, err := r.span(arg)
		if err != nil {
			return err
		}
		if k == kStr && !utf8.Valid(p) {
			return ErrBadUTF8 // each chunk of a text string is UTF-8 (RFC 8949 §3.2.3)
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

// cbBig turns a bignum's magnitude token into an integer token when it fits
// in 64 bits, or a kBig token (s = big-endian magnitude) when it does not.
func (r *rd) cbBig(t *tok, neg bool) {
	mag := t.s
	if t.esc {
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
		t.set(kInt, neg, false, u, 0, nil)
		return
	}
	t.set(kBig, neg, false, 0, 0, mag)
}

// cbSimple reads a simple value or float; epoch marks a float as tag 1's.
func cbSimple(t *tok, arg uint64, info byte, epoch bool) error {
	switch info {
	case 20:
		t.set(kBool, false, false, 0, 0, nil)
		return nil
	case 21:
		t.set(kBool, false, false, 1, 0, nil)
		return nil
	case 22:
		t.set(kNull, false, false, 0, 0, nil)
		return nil
	case 23: // undefined (see kUndef)
		t.set(kUndef, false, false, 0, 0, nil)
		return nil
	case 25:
		t.set(kFloat, false, epoch, 0, halfToFloat(uint16(arg)), nil)
		return nil
	case 26:
		t.set(kFloat, false, epoch, 0, float64(math.Float32frombits(uint32(arg))), nil)
		return nil
	case 27:
		t.set(kFloat, false, epoch, 0, math.Float64frombits(arg), nil)
		return nil
	}
	return errCBORSimple
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
