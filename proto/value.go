package proto

import (
	"math"
	"math/big"
	"sort"
	"time"
	"unicode/utf8"
)

// Generic values, for cold paths only (meta API arguments and results,
// authentication extras, tests). Hot paths never build these.
//
// A decoded value is one of: nil, bool, int64 (integers that fit), uint64
// (non-negative integers above MaxInt64), *big.Int (beyond 64 bits), float64,
// string, []byte, []any, map[string]any, and time.Time (in UTC) for a
// MsgPack timestamp. A CBOR epoch date (tag 1) is the number it tags, as
// for every CBOR tag but the bignums.

// DecodeValue decodes a raw value into a generic Go value.
func DecodeValue(r Raw) (any, error) {
	budget := math.MaxInt
	return DecodeValueBudget(r, &budget)
}

// DecodeValueBudget is DecodeValue bounded in memory: it charges to
// *budget, as it decodes, an estimate of the heap the decoded value takes
// (see the cost constants below), and fails with ErrDecodedTooLarge as
// soon as the charges exceed what *budget held, having allocated at most
// that much (plus one slice's growth). *budget is left with what remains,
// so that several values (a message's Arguments and ArgumentsKw) can share
// one budget. Generic values cost far more than their encoding: a MsgPack
// array of empty dictionaries (one byte each) takes 64 bytes per element.
func DecodeValueBudget(r Raw, budget *int) (any, error) {
	if r.B == nil {
		return nil, nil
	}
	rr := rd{b: r.B, ser: r.Ser}
	if err := charge(budget, costSlot); err != nil { // the returned interface
		return nil, err
	}
	v, err := decodeAny(&rr, 0, budget)
	if err != nil {
		return nil, err
	}
	return v, rr.end()
}

// ErrDecodedTooLarge is DecodeValueBudget's error for a value whose Go
// form exceeds the budget.
var ErrDecodedTooLarge = errf("decoded value larger than the memory budget")

// The estimated heap cost of decoded values (64-bit Go 1.24+), measured
// rather than derived: an element of a []any or a map value is an
// interface (costSlot) plus what boxing its value allocates. Integers in
// [0, 255], bools, nil and empty strings box without allocating.
const (
	costSlot     = 16  // an interface in a []any (a map's slots are costMapEntry)
	costWord     = 8   // a boxed int64, uint64 or float64
	costString   = 16  // a boxed string header (plus its bytes)
	costSlice    = 24  // a boxed slice header (plus its backing array)
	costTime     = 24  // a boxed time.Time
	costBigInt   = 48  // a *big.Int (plus its words)
	costMap      = 48  // a map's header
	costMapGroup = 288 // a map's first group: 8 slots of key and value (string, any)
	costMapEntry = 48  // each entry past the first group's 8: its slot with the table's slack
)

// charge takes n bytes from *budget, or fails when it has not that many.
func charge(budget *int, n int) error {
	if *budget < n {
		*budget = -1
		return ErrDecodedTooLarge
	}
	*budget -= n
	return nil
}

// roundAlloc rounds the length of a string's or byte slice's data up to a
// multiple of 16, about what the allocator's size classes give it.
func roundAlloc(n int) int { return (n + 15) &^ 15 }

func decodeAny(r *rd, depth int, budget *int) (any, error) {
	var t tok
	err := r.next(&t)
	if err != nil {
		return nil, err
	}
	if (t.k == kArr || t.k == kMap) && depth >= MaxDepth {
		return nil, ErrTooDeep
	}
	switch t.k {
	case kNull, kUndef:
		return nil, nil
	case kBool:
		return t.u != 0, nil
	case kInt:
		if t.neg || t.u > 255 {
			if err := charge(budget, costWord); err != nil {
				return nil, err
			}
		}
		if t.neg {
			if t.u > math.MaxInt64 {
				return bigOf(&tok{k: kBig, neg: true, s: new(big.Int).SetUint64(t.u).Bytes()}, CBOR)
			}
			return ^int64(t.u), nil
		}
		if t.u > math.MaxInt64 {
			return t.u, nil
		}
		return int64(t.u), nil
	case kBig:
		if err := charge(budget, costBigInt+roundAlloc(len(t.s))); err != nil {
			return nil, err
		}
		return bigOf(&t, r.ser)
	case kFloat:
		if err := charge(budget, costWord); err != nil {
			return nil, err
		}
		return t.f, nil
	case kTime:
		if err := charge(budget, costTime); err != nil {
			return nil, err
		}
		sec, nsec := mpTime(t.s)
		// The seconds of any timestamp survive time.Time's range:
		// Unix() gives them back.
		return time.Unix(sec, int64(nsec)).UTC(), nil
	case kStr:
		if len(t.s) > 0 {
			// The encoded length bounds the decoded one (escapes and
			// chunk heads only shrink).
			if err := charge(budget, costString+roundAlloc(len(t.s))); err != nil {
				return nil, err
			}
		}
		s, err := t.appendText(nil, r.ser)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(s) {
			return nil, ErrBadUTF8
		}
		return string(s), nil
	case kBin:
		if err := charge(budget, costSlice+roundAlloc(len(t.s))); err != nil {
			return nil, err
		}
		b, err := t.appendBytes([]byte{}, r.ser)
		return b, err
	case kArr:
		if err := charge(budget, costSlice); err != nil {
			return nil, err
		}
		var out []any
		s := seqOf(&t)
		if s.open {
			out = []any{}
		} else {
			// Every element takes at least one byte of the input.
			n := min(s.left, len(r.b)-r.i)
			if err := charge(budget, n*costSlot); err != nil {
				return nil, err
			}
			out = make([]any, 0, n)
		}
		for {
			ok, err := r.more(&s, ']')
			if err != nil {
				return nil, err
			}
			if !ok {
				return out, nil
			}
			v, err := decodeAny(r, depth+1, budget)
			if err != nil {
				return nil, err
			}
			c := cap(out)
			out = append(out, v)
			if cap(out) != c {
				if err := charge(budget, (cap(out)-c)*costSlot); err != nil {
					return nil, err
				}
			}
		}
	case kMap:
		if err := charge(budget, costMap); err != nil {
			return nil, err
		}
		out := map[string]any{}
		s := seqOf(&t)
		for {
			ok, err := r.more(&s, '}')
			if err != nil {
				return nil, err
			}
			if !ok {
				return out, nil
			}
			k, err := r.readKey(new([]byte))
			if err != nil {
				return nil, err
			}
			if !utf8.Valid(k) {
				return nil, ErrBadUTF8
			}
			if r.undefined() {
				continue // an undefined member is absent (see kUndef)
			}
			cost := costMapEntry
			if len(out) == 0 {
				cost = costMapGroup
			} else if len(out) < 8 {
				cost = 0
			}
			if len(k) > 1 {
				cost += roundAlloc(len(k))
			}
			if err := charge(budget, cost); err != nil {
				return nil, err
			}
			v, err := decodeAny(r, depth+1, budget)
			if err != nil {
				return nil, err
			}
			out[string(k)] = v
		}
	}
	return nil, ErrUnsupported
}

// AppendValue appends a generic Go value encoded in ser. It accepts the
// types DecodeValue returns (a time.Time is written as a date: see
// timestamp.go) plus the other integer and float types,
// []string, []uint64, map[string]string and Raw (written as is, or
// transcoded). Map keys are written in sorted order so that output is
// deterministic; a key "__proto__" is refused (ErrKeyNotString), as the
// decoders refuse it in a payload.
func AppendValue(dst []byte, ser Serializer, v any) ([]byte, error) {
	if !ser.Valid() {
		return dst, ErrBadSerializer
	}
	w := wr{b: dst, ser: ser}
	var sc []byte
	if err := w.any(v, 0, &sc); err != nil {
		return dst, err
	}
	return w.b, nil
}

// EncodeValue encodes a generic value into a new Raw.
func EncodeValue(ser Serializer, v any) (Raw, error) {
	b, err := AppendValue(nil, ser, v)
	if err != nil {
		return Raw{}, err
	}
	return Raw{Ser: ser, B: b}, nil
}

// any writes a generic value. depth is the number of containers around it;
// a container at depth MaxDepth is refused, as on input.
func (w *wr) any(v any, depth int, sc *[]byte) error {
	switch x := v.(type) {
	case nil:
		w.null()
	case bool:
		w.bool(x)
	case int:
		w.int(int64(x))
	case int8:
		w.int(int64(x))
	case int16:
		w.int(int64(x))
	case int32:
		w.int(int64(x))
	case int64:
		w.int(x)
	case uint:
		w.uint(uint64(x))
	case uint8:
		w.uint(uint64(x))
	case uint16:
		w.uint(uint64(x))
	case uint32:
		w.uint(uint64(x))
	case uint64:
		w.uint(x)
	case float32:
		return w.float(float64(x))
	case float64:
		return w.float(x)
	case *big.Int:
		if x == nil { // as encoding/json writes a nil pointer
			w.null()
			return nil
		}
		return w.big(x)
	case time.Time:
		return w.time(x.Unix(), uint32(x.Nanosecond()))
	case string:
		return w.text(x)
	case []byte:
		w.bin(x)
	case Raw:
		if x.B == nil {
			w.null()
			return nil
		}
		return w.rawAt(x, depth, true, sc)
	case []any, []string, []uint64, map[string]any, map[string]string:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		return w.anyContainer(v, depth, sc)
	default:
		return ErrUnsupported
	}
	return nil
}

// anyContainer writes the list and map types of any.
func (w *wr) anyContainer(v any, depth int, sc *[]byte) error {
	switch x := v.(type) {
	case []any:
		w.arr(len(x))
		for i, e := range x {
			if i > 0 {
				w.comma()
			}
			if err := w.any(e, depth+1, sc); err != nil {
				return err
			}
		}
		w.endArr()
	case []string:
		w.arr(len(x))
		for i, e := range x {
			if i > 0 {
				w.comma()
			}
			if err := w.text(e); err != nil {
				return err
			}
		}
		w.endArr()
	case []uint64:
		w.arr(len(x))
		for i, e := range x {
			if i > 0 {
				w.comma()
			}
			w.uint(e)
		}
		w.endArr()
	case map[string]any:
		w.mapH(len(x))
		for i, k := range sortedKeys(x) {
			if i > 0 {
				w.comma()
			}
			if err := w.key(k); err != nil {
				return err
			}
			w.colon()
			if err := w.any(x[k], depth+1, sc); err != nil {
				return err
			}
		}
		w.endMap()
	case map[string]string:
		w.mapH(len(x))
		for i, k := range sortedKeys(x) {
			if i > 0 {
				w.comma()
			}
			if err := w.key(k); err != nil {
				return err
			}
			w.colon()
			if err := w.text(x[k]); err != nil {
				return err
			}
		}
		w.endMap()
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// text writes a string from a generic value, checking that it is UTF-8 in
// every serializer (the JSON writer checks on its own).
func (w *wr) text(s string) error {
	if w.ser != JSON && !utf8.ValidString(s) {
		return ErrBadUTF8
	}
	return w.strS(s)
}

// key writes a dictionary key from a generic value. "__proto__" is
// refused (ErrKeyNotString), as every decoder here refuses it in a
// payload (see protoKey): the router ends the session of a peer that
// sends one, so the Go client, which encodes through here, returns the
// error from Publish or Call instead of losing its session.
func (w *wr) key(k string) error {
	if k == protoKey {
		return ErrKeyNotString
	}
	return w.text(k)
}

// IDs appends the ids of an id-list key (exclude, eligible) to buf.
func (f *Fields) IDs(k Key, buf []uint64) []uint64 {
	f.EachID(k, func(u uint64) { buf = append(buf, u) })
	return buf
}

// EachID calls fn with each id of an id-list key (exclude, eligible), in
// order, without collecting them: a list of one-byte ids would otherwise
// take eight times its encoded size.
func (f *Fields) EachID(k Key, fn func(uint64)) {
	r := f.Raw(k)
	if r.B == nil {
		return
	}
	rr := rd{b: r.B, ser: r.Ser}
	var t tok
	err := rr.next(&t)
	if err != nil || t.k != kArr {
		return
	}
	s := seqOf(&t)
	for {
		ok, err := rr.more(&s, ']')
		if err != nil || !ok {
			return
		}
		var e tok
		err = rr.next(&e)
		if err != nil {
			return
		}
		u, ok := uintOf(&e) // the decoder accepts integral floats too
		if !ok {
			return
		}
		fn(u)
	}
}

// Strings appends the elements of a string-list key (exclude_authid,
// authmethods, ...) to buf. The slices alias the raw value, except for
// strings with JSON escapes or CBOR chunks, which are copied.
func (f *Fields) Strings(k Key, buf [][]byte) [][]byte {
	f.EachString(k, func(b []byte) { buf = append(buf, b) })
	return buf
}

// EachString calls fn with each element of a string-list key, in order,
// without collecting them. The slice passed aliases the raw value (or,
// for strings with JSON escapes or CBOR chunks, a copy); fn must not keep
// it.
func (f *Fields) EachString(k Key, fn func([]byte)) {
	r := f.Raw(k)
	if r.B == nil {
		return
	}
	rr := rd{b: r.B, ser: r.Ser}
	var t tok
	err := rr.next(&t)
	if err != nil || t.k != kArr {
		return
	}
	s := seqOf(&t)
	for {
		ok, err := rr.more(&s, ']')
		if err != nil || !ok {
			return
		}
		var e tok
		err = rr.next(&e)
		if err != nil {
			return
		}
		if e.esc {
			c, err := e.appendText(nil, rr.ser)
			if err != nil {
				return
			}
			fn(c)
			continue
		}
		fn(e.s)
	}
}
