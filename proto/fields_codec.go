package proto

import (
	"math"
	"unicode/utf8"
)

// parseDict reads a dictionary, filling f with the keys it knows and
// validating their types, and returns the dictionary's encoded span.
// where names the dictionary for error texts, e.g. "PUBLISH.Options".
func (d *Decoder) parseDict(r *rd, f *Fields, lay *layout) ([]byte, error) {
	if r.ser == JSON {
		r.jsonWS()
	}
	start := r.i
	s, err := r.beginMap()
	if err == errNotMap {
		return nil, d.fieldErr(lay, "", "must be a dictionary")
	}
	if err != nil {
		return nil, err // truncated, or a declared length beyond the input
	}
	for {
		ok, err := r.more(&s, '}')
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		name, err := r.readKey(&d.scratch)
		if err != nil {
			return nil, err
		}
		k, known := lookupKey(name)
		if !known {
			if _, err := r.skip(1); err != nil {
				return nil, err
			}
			continue
		}
		if err := d.parseValue(r, f, k, lay); err != nil {
			return nil, err
		}
	}
	return r.b[start:r.i:r.i], nil
}

func (d *Decoder) parseValue(r *rd, f *Fields, k Key, lay *layout) error {
	if r.undefined() {
		return nil // JavaScript undefined: the key is absent (see kUndef)
	}
	info := &keys[k]
	switch info.kind {
	case kindBool:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kBool {
			return d.fieldErr(lay, info.name, "must be a bool")
		}
		f.SetBool(k, t.u != 0)
	case kindID, kindUint:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if k == KeyTimeout {
			u, ok := msOf(&t)
			switch {
			case ok:
				f.SetUint(k, u)
			case t.k == kInt || t.k == kBig || t.k == kFloat || t.k == kNull:
				// ErrBadTimeout, once the rest has decoded. null too:
				// JSON.stringify writes NaN and the infinities as null.
				d.badTimeout = true
			default:
				return d.fieldErr(lay, info.name, "must be a non-negative number of milliseconds below 2^63")
			}
			break
		}
		u, ok := uintOf(&t)
		if !ok || (info.kind == kindID && u > MaxID) {
			if info.kind == kindID {
				return d.fieldErr(lay, info.name, "must be an id (an integer in [0, 2^53])")
			}
			return d.fieldErr(lay, info.name, "must be a non-negative integer")
		}
		f.SetUint(k, u)
	case kindStr, kindEnum:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kStr {
			return d.fieldErr(lay, info.name, "must be a string")
		}
		s, err := t.text(&d.scratch, r.ser)
		if err != nil {
			return err
		}
		if r.ser != JSON && !utf8.Valid(s) {
			return d.fieldErr(lay, info.name, "must be a UTF-8 string")
		}
		if r.ser == JSON && t.esc && jsonLoneSurrogate(t.s) {
			// Unescaped, it would be U+FFFD: "a\ud800" and "a\udc00"
			// one authid (as URIs: see Decoder.element).
			return d.fieldErr(lay, info.name, "must be a UTF-8 string (no lone surrogate escape)")
		}
		if len(s) > 0 && s[0] == 0 {
			// A MsgPack or CBOR text starting with NUL has no JSON form (a
			// JSON string starting with NUL is binary: jsonStr refuses
			// it), and the ppt_* options are passed on into Details that
			// JSON peers get (EVENT, INVOCATION, RESULT, ERROR).
			return d.fieldErr(lay, info.name, "must not start with NUL (a text with no JSON form)")
		}
		if info.kind == kindEnum && !enumOK(info.enum, s) {
			return d.fieldErr(lay, info.name, "has a value that is not allowed")
		}
		f.SetStr(k, s)
	case kindIDList, kindStrList, kindDictList:
		span, err := d.parseList(r, info, lay)
		if err != nil {
			return err
		}
		f.SetRaw(k, Raw{Ser: r.ser, B: span})
	case kindDict:
		if r.ser == JSON {
			r.jsonWS()
		}
		save := r.i
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kMap {
			return d.fieldErr(lay, info.name, "must be a dictionary")
		}
		r.i = save
		span, err := r.skip(1)
		if err != nil {
			return err
		}
		f.SetRaw(k, Raw{Ser: r.ser, B: span})
	}
	return nil
}

// parseList validates a list key's element types and returns its span.
func (d *Decoder) parseList(r *rd, info *keyInfo, lay *layout) ([]byte, error) {
	if r.ser == JSON {
		r.jsonWS()
	}
	start := r.i
	var t tok
	err := r.next(&t)
	if err != nil {
		return nil, err
	}
	if t.k != kArr {
		return nil, d.fieldErr(lay, info.name, "must be a list")
	}
	s := seqOf(&t)
	for {
		ok, err := r.more(&s, ']')
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if info.kind == kindDictList {
			save := r.i
			if r.ser == JSON {
				r.jsonWS()
				save = r.i
			}
			var e tok
			err := r.next(&e)
			if err != nil {
				return nil, err
			}
			if e.k != kMap {
				return nil, d.fieldErr(lay, info.name, "must be a list of dictionaries")
			}
			r.i = save
			if _, err := r.skip(2); err != nil {
				return nil, err
			}
			continue
		}
		var e tok
		err = r.next(&e)
		if err != nil {
			return nil, err
		}
		switch info.kind {
		case kindIDList:
			if u, ok := uintOf(&e); !ok || u > MaxID {
				return nil, d.fieldErr(lay, info.name, "must be a list of ids")
			}
		case kindStrList:
			if e.k != kStr {
				return nil, d.fieldErr(lay, info.name, "must be a list of strings")
			}
			if r.ser != JSON { // as a string field: exclude_authid's and authmethods' too
				s, err := e.text(&d.scratch, r.ser)
				if err != nil {
					return nil, err
				}
				if !utf8.Valid(s) {
					return nil, d.fieldErr(lay, info.name, "must be a list of UTF-8 strings")
				}
			}
		}
	}
	return r.b[start:r.i:r.i], nil
}

// uintOf returns a non-negative integer token's value; integral floats are
// accepted too (some clients send 1000.0 for a timeout).
func uintOf(t *tok) (uint64, bool) {
	switch t.k {
	case kInt:
		return t.u, !t.neg
	case kFloat:
		if t.f >= 0 && t.f <= math.MaxInt64 && t.f == math.Trunc(t.f) {
			return uint64(t.f), true
		}
	}
	return 0, false
}

// msOf is uintOf for CALL.Options.timeout and INVOCATION.Details.timeout
// (milliseconds), where a client may send a fraction: the WAMP spec says integer, but an
// Autobahn|JS application's timeout is what it computed, and 1.005*1000 is
// 1004.9999999999999 in JavaScript. Ending the caller's session for it (a
// protocol violation) left that call unsettled in Autobahn|JS. A finite
// non-negative number is rounded to the nearest integer, a positive one to
// 1 at least (0 would mean no timeout). NaN, infinities, negative numbers
// and those of 2^63 or more are refused.
func msOf(t *tok) (uint64, bool) {
	if t.k != kFloat {
		return uintOf(t)
	}
	if !(t.f >= 0 && t.f < math.MaxInt64) { // NaN fails both
		return 0, false
	}
	r := math.Round(t.f)
	if r == 0 && t.f > 0 {
		r = 1
	}
	return uint64(r), true
}

func enumOK(allowed []string, s []byte) bool {
	for _, a := range allowed {
		if a == "x_" {
			if len(s) > 2 && string(s[:2]) == "x_" {
				return true
			}
			continue
		}
		if string(s) == a {
			return true
		}
	}
	return false
}

// fieldErr builds "MSG.Dict.key what". Cold path: only for bad input.
func (d *Decoder) fieldErr(lay *layout, key, what string) error {
	name := lay.name + "." + lay.dictName
	if key != "" {
		name += "." + key
	}
	return errf(name + " " + what)
}

// writeFields writes f as a dictionary.
func (w *wr) writeFields(f *Fields, sc *[]byte) error {
	w.mapH(f.Len())
	first := true
	for h := f.has; h != 0; h &= h - 1 {
		k := Key(trailingZeros(h))
		if !first {
			w.comma()
		}
		first = false
		info := &keys[k]
		_ = w.strS(info.name) // a constant ASCII name: cannot fail
		w.colon()
		switch info.kind {
		case kindBool:
			w.bool(f.bools&(1<<k) != 0)
		case kindID, kindUint:
			w.uint(f.num[info.slot])
		case kindStr, kindEnum:
			v := &f.str[info.slot]
			if v.b != nil {
				if err := w.str(v.b); err != nil {
					return err
				}
			} else if err := w.strS(v.s); err != nil {
				return err
			}
		default:
			r := f.raw[info.slot]
			if r.B == nil {
				w.null()
				continue
			}
			if err := w.raw(r, sc); err != nil {
				return err
			}
		}
	}
	w.endMap()
	return nil
}
