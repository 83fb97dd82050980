package fuzz

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/fxamacker/cbor/v2"
	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

var sers = []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}

// FuzzTranscodeDifferential checks proto's three codecs against each other
// and against independent decoders. The first input byte picks the source
// serializer A (b%3) and the target B (b/3%3); the rest is a value in A.
//
//   - DecodeValue(A) and Transcode(A→B) agree on whether the value is valid
//     (JSON alone may lack a form: NaN, infinity, text starting with NUL);
//   - the value transcoded to B and back to A decodes equal to the original
//     (MsgPack carries integers beyond 64 bits as float64: only there may an
//     integer come back as a float; a date may come back as the RFC 3339
//     text or the epoch number it was carried as, and through a CBOR float
//     only to that float's precision);
//   - the reference decoder of B (goccy/go-json, vmihailenco/msgpack,
//     fxamacker/cbor) reads the transcoded bytes as the same value.
//
// Run with: go test -run '^$' -fuzz '^FuzzTranscodeDifferential$' -fuzztime 30s ./fuzz
func FuzzTranscodeDifferential(f *testing.F) {
	pick := func(a, b proto.Serializer) byte { return byte(int(a-1) + 3*int(b-1)) }
	seeds := []struct {
		from, to proto.Serializer
		in       string // JSON text, or hex
	}{
		// WAMP payloads as clients send them.
		{proto.JSON, proto.MsgPack, `["Hello, world!",42,1.5,{"a":[true,false,null]}]`},
		{proto.JSON, proto.CBOR, `{"roles":{"caller":{"features":{"call_timeout":true}}}}`},
		// JSON binary, escapes, surrogates, integers at every width.
		{proto.JSON, proto.MsgPack, `["\u0000AAEC/w==","\u0000AAEC/w","\"\\\/\b\f\n\r\t\u00e9","\ud83d\ude00\ud800"]`},
		{proto.JSON, proto.CBOR, `[0,-1,23,24,-25,255,256,65536,4294967296,9007199254740992,18446744073709551615,-9223372036854775808]`},
		// Beyond 64 bits: exact in CBOR, a float in MsgPack.
		{proto.JSON, proto.CBOR, `[18446744073709551616,-18446744073709551617,123456789012345678901234567890]`},
		{proto.JSON, proto.MsgPack, `[18446744073709551616,-18446744073709551616]`},
		// Floats that must stay floats.
		{proto.JSON, proto.MsgPack, `[1.0,-0.0,1e21,5e-324,1.7976931348623157e308]`},
		// MsgPack: float32, bin, str8/16, array16, map16, negative ints.
		{proto.MsgPack, proto.JSON, "95ca3fc00000c403010203d90161dc000101de0001a16101"},
		{proto.MsgPack, proto.CBOR, "93d0dfd1ff7fd38000000000000000"},
		// MsgPack NaN (no JSON form) and a NUL-led string.
		{proto.MsgPack, proto.JSON, "cb7ff8000000000001"},
		{proto.MsgPack, proto.CBOR, "a300410a"},
		// CBOR: half floats, indefinite containers, chunked strings, tags,
		// bignums.
		{proto.CBOR, proto.JSON, "84f93c00f97c00f90001fa3fc00000"},
		{proto.CBOR, proto.MsgPack, "9f 9fff 9f01ff bf6161f5ff 7f6268696121ff 5f4200014102ff ff"},
		{proto.CBOR, proto.JSON, "83c11a514b67b0c249010000000000000000c3420100"},
		{proto.CBOR, proto.MsgPack, "823bffffffffffffffffd9d9f7f7"},
		// JavaScript undefined (MsgPack fixext 1 type 0, CBOR simple 23):
		// null in a list, dropped from a map (as JSON.stringify does).
		{proto.MsgPack, proto.JSON, "92d40000 82a161d40000a16201"},
		{proto.CBOR, proto.MsgPack, "82f7 a26161f7616201"},
		// Dates: MsgPack timestamps 32, 64 and 96 as wampy (msgpackr)
		// writes a Date, their extremes, beyond RFC 3339's years; CBOR
		// tag 1 as cbor-x writes a Date, on every number form, out of a
		// timestamp's range.
		{proto.MsgPack, proto.JSON, "94d6ff6b11ca00 d7ff1d5353006b11ca00 c70cff004c4b4000000004a0fe7280 c70cff1dcd6500ffffffffffffffff"},
		{proto.MsgPack, proto.CBOR, "94d6ff6b11ca00 d7ff1d5353006b11ca00 c70cff004c4b4000000004a0fe7280 c70cff1dcd6500ffffffffffffffff"},
		{proto.MsgPack, proto.CBOR, "94d7ffee6b27ffffffffff c70cff3b9ac9ff7fffffffffffffff c70cff000000008000000000000000 c70cff000000000000003afff44180"},
		{proto.MsgPack, proto.JSON, "92c70cff3b9ac9ff0000003afff4417f c70cff00000000fffffff1868b8400"},
		{proto.MsgPack, proto.JSON, "c70cff000000000000003afff44180"},
		{proto.CBOR, proto.MsgPack, "82c1fb41dac4728007df3b a16261 74c11a6b11ca00"},
		{proto.CBOR, proto.MsgPack, "88c120c13b7fffffffffffffffc1f93e00c1fa3fc00000c1fb3feffffffffffffdc11b8000000000000000c1fb7ff8000000000000c1fb43e0000000000000"},
		// Deep nesting at the limit.
		{proto.JSON, proto.CBOR, strings.Repeat("[", proto.MaxDepth) + strings.Repeat("]", proto.MaxDepth)},
	}
	for _, s := range seeds {
		in := []byte(s.in)
		if s.from != proto.JSON {
			var err error
			if in, err = hex.DecodeString(strings.ReplaceAll(s.in, " ", "")); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(append([]byte{pick(s.from, s.to)}, in...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		a := sers[int(data[0])%3]
		b := sers[int(data[0])/3%3]
		differential(t, a, b, data[1:])
	})
}

func differential(t *testing.T, a, b proto.Serializer, in []byte) {
	src := proto.Raw{Ser: a, B: in}
	orig, derr := proto.DecodeValue(src)
	out, terr := proto.Transcode(nil, b, src)
	if derr != nil {
		requireProtoError(t, derr, "DecodeValue")
		if terr == nil {
			t.Fatalf("DecodeValue(%s) refuses (%v) what Transcode to %s accepts: %x", a, derr, b, in)
		}
		requireProtoError(t, terr, "Transcode")
		return
	}
	if terr != nil {
		requireProtoError(t, terr, "Transcode")
		switch {
		case b == proto.JSON && errors.Is(terr, proto.ErrNotJSONable):
		case b == proto.MsgPack && beyondFloat64(orig):
		default:
			t.Fatalf("Transcode %s->%s of a valid value: %v\nvalue: %#v", a, b, terr, orig)
		}
		return
	}
	mid, err := proto.DecodeValue(proto.Raw{Ser: b, B: out})
	if err != nil {
		t.Fatalf("transcoded %s does not decode: %v\nout: %x", b, err, out)
	}
	o := opts{msgpack: a == proto.MsgPack || b == proto.MsgPack}
	if d := diff("$", orig, mid, o); d != "" {
		t.Fatalf("%s->%s: %s", a, b, d)
	}
	// A CBOR tag 1 float made a MsgPack timestamp is rounded to the
	// nanosecond, and comes back so. Which numbers were tagged is not
	// known here: numbers are compared to that precision when the input
	// may hold a tag 1.
	o.epoch = a == proto.CBOR && b == proto.MsgPack && bytes.IndexByte(in, 0xc1) >= 0
	back, err := proto.Transcode(nil, a, proto.Raw{Ser: b, B: out})
	if err != nil {
		t.Fatalf("transcoding back %s->%s: %v", b, a, err)
	}
	final, err := proto.DecodeValue(proto.Raw{Ser: a, B: back})
	if err != nil {
		t.Fatalf("round trip %s->%s->%s does not decode: %v", a, b, a, err)
	}
	if d := diff("$", orig, final, o); d != "" {
		t.Fatalf("%s->%s->%s: %s", a, b, a, d)
	}
	ref, err := refDecode(b, out)
	if errors.Is(err, errDupKey) {
		return // the reference keeps the first or the last: not comparable
	}
	if err != nil {
		t.Fatalf("reference %s decoder refuses proto's output: %v\nout: %x", b, err, out)
	}
	o.undef = a == proto.CBOR && b == proto.CBOR
	if d := diff("$", orig, ref, o); d != "" {
		t.Fatalf("reference %s decoder reads %s->%s differently: %s", b, a, b, d)
	}
}

// beyondFloat64 reports whether v holds an integer too large even for a
// float64, which MsgPack therefore cannot carry.
func beyondFloat64(v any) bool {
	switch x := v.(type) {
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return math.IsInf(f, 0)
	case []any:
		for _, e := range x {
			if beyondFloat64(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range x {
			if beyondFloat64(e) {
				return true
			}
		}
	}
	return false
}

func requireProtoError(t *testing.T, err error, what string) {
	t.Helper()
	var pe *proto.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: got %T %v, want a *proto.Error", what, err, err)
	}
}

// opts relaxes diff: with msgpack set, an integer outside MsgPack's range
// (below -2^63 or above 2^64-1) may come back as the nearest float64; with
// epoch set, a number may come back as the number a timestamp of it
// rounded to the nanosecond is (see sameInstant).
// opts: msgpack, MsgPack is on the way (integers past its range become
// floats); epoch, numbers compared to the nanosecond (a CBOR tag 1 made a
// MsgPack timestamp); undef, a member of got's dictionaries that want
// lacks and got reads as nil is CBOR's undefined, which proto's
// DecodeValue leaves out and a CBOR to CBOR transcode keeps (fee19cd):
// a reference decoder reads it as nil.
type opts struct{ msgpack, epoch, undef bool }

var (
	minInt64  = big.NewInt(math.MinInt64)
	maxUint64 = new(big.Int).SetUint64(math.MaxUint64)
)

// number returns v as an exact integer or a float; ok is false for other
// kinds.
func number(v any) (i *big.Int, f float64, isInt, ok bool) {
	switch x := v.(type) {
	case int8:
		return big.NewInt(int64(x)), 0, true, true
	case int16:
		return big.NewInt(int64(x)), 0, true, true
	case int32:
		return big.NewInt(int64(x)), 0, true, true
	case int64:
		return big.NewInt(x), 0, true, true
	case uint8:
		return new(big.Int).SetUint64(uint64(x)), 0, true, true
	case uint16:
		return new(big.Int).SetUint64(uint64(x)), 0, true, true
	case uint32:
		return new(big.Int).SetUint64(uint64(x)), 0, true, true
	case uint64:
		return new(big.Int).SetUint64(x), 0, true, true
	case *big.Int:
		return x, 0, true, true
	case float32:
		return nil, float64(x), false, true
	case float64:
		return nil, x, false, true
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, ok := new(big.Int).SetString(s, 10); ok {
				return i, 0, true, true
			}
		}
		fl, err := x.Float64()
		return nil, fl, false, err == nil
	}
	return nil, 0, false, false
}

// diff compares two generic values and says where they differ ("" when
// equal). Integers compare by value whatever their Go type.
func diff(path string, want, got any, o opts) string {
	// A date (a MsgPack timestamp, read as a time.Time by proto and by the
	// reference decoders of MsgPack and CBOR) is carried as a date, or as
	// what the target's clients read for one.
	wt, wDate := want.(time.Time)
	gt, gDate := got.(time.Time)
	switch {
	case wDate && !sameInstant(wt, got):
		return fmt.Sprintf("%s: got %T %v, want the date %v", path, got, got, wt)
	case !wDate && gDate && !sameInstant(gt, want):
		return fmt.Sprintf("%s: got the date %v, want %T %v", path, gt, want, want)
	case wDate || gDate:
		return ""
	}
	if wi, wf, wInt, ok := number(want); ok {
		gi, gf, gInt, ok := number(got)
		switch {
		case !ok:
			return fmt.Sprintf("%s: got %T %v, want number %v", path, got, got, want)
		case o.epoch && !(wInt && gInt):
			if !nearInstant(epochRat(wi, wf, wInt), epochRat(gi, gf, gInt), wf, gf) {
				return fmt.Sprintf("%s: got %v%v, want %v%v, or the same to the nanosecond", path, gi, gf, wi, wf)
			}
		case wInt && gInt:
			if wi.Cmp(gi) != 0 {
				return fmt.Sprintf("%s: got %v, want %v", path, gi, wi)
			}
		case !wInt && !gInt:
			if wf != gf && !(math.IsNaN(wf) && math.IsNaN(gf)) {
				return fmt.Sprintf("%s: got %v, want %v", path, gf, wf)
			}
		case o.msgpack && wInt && (wi.Cmp(minInt64) < 0 || wi.Cmp(maxUint64) > 0):
			if f, _ := new(big.Float).SetInt(wi).Float64(); f != gf {
				return fmt.Sprintf("%s: got %v, want ~%v", path, gf, wi)
			}
		default:
			return fmt.Sprintf("%s: got %T %v, want %T %v", path, got, got, want, want)
		}
		return ""
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return fmt.Sprintf("%s: got %#v, want nil", path, got)
		}
	case bool, string:
		if got != want {
			return fmt.Sprintf("%s: got %T %#v, want %T %#v", path, got, got, want, want)
		}
	case []byte:
		if g, ok := got.([]byte); !ok || !bytes.Equal(g, w) {
			return fmt.Sprintf("%s: got %T %#v, want %x", path, got, got, w)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %T %#v, want a %d-element list", path, got, got, len(w))
		}
		for i := range w {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], o); d != "" {
				return d
			}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if ok && o.undef && len(g) > len(w) {
			kept := make(map[string]any, len(g))
			for k, v := range g {
				if _, in := w[k]; in || v != nil {
					kept[k] = v
				}
			}
			g = kept
		}
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %T %#v, want a %d-entry dict", path, got, got, len(w))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s: key %q missing", path, k)
			}
			if d := diff(path+"."+k, w[k], gv, o); d != "" {
				return d
			}
		}
	default:
		return fmt.Sprintf("%s: unexpected type %T", path, want)
	}
	return ""
}

// sameInstant reports whether v stands for the instant t: a time.Time, the
// RFC 3339 text of t, or its epoch seconds as an integer or a float (see
// nearInstant).
func sameInstant(t time.Time, v any) bool {
	at := epochRat(new(big.Int).Add(new(big.Int).Mul(big.NewInt(t.Unix()), big.NewInt(1e9)), big.NewInt(int64(t.Nanosecond()))), 0, true)
	at.Quo(at, big.NewRat(1e9, 1))
	switch x := v.(type) {
	case time.Time:
		// Through a CBOR float, a timestamp has that float's precision.
		f, _ := at.Float64()
		u := epochRat(new(big.Int).Add(new(big.Int).Mul(big.NewInt(x.Unix()), big.NewInt(1e9)), big.NewInt(int64(x.Nanosecond()))), 0, true)
		return nearInstant(at, u.Quo(u, big.NewRat(1e9, 1)), f, f)
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		return err == nil && p.Equal(t)
	}
	i, f, isInt, ok := number(v)
	if !ok || !isInt && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return false
	}
	return nearInstant(at, epochRat(i, f, isInt), f, f)
}

// epochRat is a number as an exact rational.
func epochRat(i *big.Int, f float64, isInt bool) *big.Rat {
	if isInt {
		return new(big.Rat).SetInt(i)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return new(big.Rat).SetFloat64(f)
}

// nearInstant reports whether two epoch times are the same to a
// nanosecond and half the spacing of the floats (of magnitude f or g) they
// may have been carried as: a timestamp made of a CBOR tag 1 float is
// rounded to the nanosecond, and one carried as a float rounded to it.
func nearInstant(a, b *big.Rat, f, g float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	tol := big.NewRat(1, 1e9)
	for _, x := range []float64{f, g} {
		x = math.Abs(x)
		if sp := math.Nextafter(x, math.Inf(1)) - x; !math.IsInf(sp, 0) {
			tol.Add(tol, new(big.Rat).SetFloat64(sp/2))
		}
	}
	d := new(big.Rat).Sub(a, b)
	return d.Abs(d).Cmp(tol) <= 0
}

var errDupKey = errors.New("duplicate map key")

var refCBOR = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DefaultMapType:  reflect.TypeOf(map[string]any(nil)),
		BigIntDec:       cbor.BigIntDecodePointer,
		IntDec:          cbor.IntDecConvertNone,
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: 4 * proto.MaxDepth,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// refDecode reads one value with the reference decoder of ser, turning JSON
// "\u0000"+base64 strings into bytes (WAMP's binary convention).
func refDecode(ser proto.Serializer, b []byte) (any, error) {
	var v any
	switch ser {
	case proto.JSON:
		d := gojson.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		return jsonBinary(v)
	case proto.MsgPack:
		d := msgpack.NewDecoder(bytes.NewReader(b))
		v, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		if _, err := d.PeekCode(); err == nil {
			return nil, errors.New("msgpack: trailing bytes")
		}
		return v, nil
	case proto.CBOR:
		err := refCBOR.Unmarshal(b, &v)
		var dup *cbor.DupMapKeyError
		if errors.As(err, &dup) {
			return nil, errDupKey
		}
		return v, err
	}
	return nil, fmt.Errorf("no reference decoder for %v", ser)
}

func jsonBinary(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if !strings.HasPrefix(x, "\x00") {
			return x, nil
		}
		// Standard padded base64 only (encoding/base64 would skip line
		// breaks).
		s := x[1:]
		if strings.ContainsAny(s, "\r\n") {
			return nil, errors.New("line break in base64")
		}
		return base64.StdEncoding.DecodeString(s)
	case []any:
		for i, e := range x {
			n, err := jsonBinary(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	case map[string]any:
		for k, e := range x {
			n, err := jsonBinary(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	}
	return v, nil
}
