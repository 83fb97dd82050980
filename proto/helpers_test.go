package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"
	"testing"
	"time"
)

// Test helpers shared by the proto tests. One assertion style: t.Fatalf /
// t.Errorf with "got X, want Y" texts, through the small helpers below.

// serializers lists the serializers every table test runs over.
var serializers = []Serializer{JSON, MsgPack, CBOR}

func requireNoError(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

// requireErrorContains fails unless err is a non-nil error whose text holds
// want (when want is not empty).
func requireErrorContains(t testing.TB, err error, want, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one containing %q", what, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: got error %q, want one containing %q", what, err, want)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	requireNoError(t, err, "hex")
	return b
}

// hexOf returns s's bytes in hex, for test vectors written in hex.
func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

// mustDecode decodes b in ser into a fresh message.
func mustDecode(t testing.TB, ser Serializer, b []byte) *Message {
	t.Helper()
	m, err := Decode(ser, b)
	if err != nil {
		t.Fatalf("Decode(%s, %s): %v", ser, show(ser, b), err)
	}
	return m
}

// mustAppend encodes m in ser.
func mustAppend(t testing.TB, ser Serializer, m *Message) []byte {
	t.Helper()
	b, err := Append(nil, ser, m)
	if err != nil {
		t.Fatalf("Append(%s, %s): %v", ser, m.Type, err)
	}
	return b
}

// mustValue decodes a raw value (nil for an absent one).
func mustValue(t testing.TB, r Raw) any {
	t.Helper()
	v, err := DecodeValue(r)
	if err != nil {
		t.Fatalf("DecodeValue(%s, %s): %v", r.Ser, show(r.Ser, r.B), err)
	}
	return v
}

// mustEncodeValue encodes a generic value in ser.
func mustEncodeValue(t testing.TB, ser Serializer, v any) Raw {
	t.Helper()
	r, err := EncodeValue(ser, v)
	requireNoError(t, err, fmt.Sprintf("EncodeValue(%s, %#v)", ser, v))
	return r
}

// show renders encoded bytes for failure texts: JSON as text, others as hex.
func show(ser Serializer, b []byte) string {
	const max = 200
	var s string
	if ser == JSON {
		s = fmt.Sprintf("%q", b)
	} else {
		s = hex.EncodeToString(b)
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// num is the numeric view of a value: an exact integer or a float.
type num struct {
	isInt bool
	i     *big.Int
	f     float64
}

// numOf returns v's numeric view; ok is false when v is not a number.
func numOf(v any) (num, bool) {
	switch x := v.(type) {
	case int:
		return num{isInt: true, i: big.NewInt(int64(x))}, true
	case int8:
		return num{isInt: true, i: big.NewInt(int64(x))}, true
	case int16:
		return num{isInt: true, i: big.NewInt(int64(x))}, true
	case int32:
		return num{isInt: true, i: big.NewInt(int64(x))}, true
	case int64:
		return num{isInt: true, i: big.NewInt(x)}, true
	case uint:
		return num{isInt: true, i: new(big.Int).SetUint64(uint64(x))}, true
	case uint8:
		return num{isInt: true, i: new(big.Int).SetUint64(uint64(x))}, true
	case uint16:
		return num{isInt: true, i: new(big.Int).SetUint64(uint64(x))}, true
	case uint32:
		return num{isInt: true, i: new(big.Int).SetUint64(uint64(x))}, true
	case uint64:
		return num{isInt: true, i: new(big.Int).SetUint64(x)}, true
	case *big.Int:
		return num{isInt: true, i: x}, true
	case big.Int:
		return num{isInt: true, i: &x}, true
	case float32:
		return num{f: float64(x)}, true
	case float64:
		return num{f: x}, true
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, ok := new(big.Int).SetString(s, 10); ok {
				return num{isInt: true, i: i}, true
			}
		}
		f, err := x.Float64()
		if err != nil {
			return num{}, false
		}
		return num{f: f}, true
	}
	return num{}, false
}

// eqOpts relaxes valueDiff for known, documented conversions.
type eqOpts struct {
	// intAsFloat lets an integer match a float of the nearest value
	// (MsgPack carries integers beyond 64 bits as float64).
	intAsFloat bool
	// jsonKind lets a json.Number match an integer or a float of the same
	// value (expectations read from the test suite's JSON files).
	jsonKind bool
	// dates lets a time.Time (a MsgPack timestamp) match what it is
	// transcoded to: its RFC 3339 text (JSON) or epoch seconds (CBOR tag 1,
	// read as the number), and a number the timestamp a CBOR tag 1 became
	// (see timestamp.go).
	dates bool
}

func (a num) equal(b num, o eqOpts) bool {
	switch {
	case a.isInt && b.isInt:
		return a.i.Cmp(b.i) == 0
	case !a.isInt && !b.isInt:
		return a.f == b.f || (math.IsNaN(a.f) && math.IsNaN(b.f))
	case o.intAsFloat || o.jsonKind:
		i, f := a.i, b.f
		if !a.isInt {
			i, f = b.i, a.f
		}
		fi, _ := new(big.Float).SetInt(i).Float64()
		return fi == f
	}
	return false
}

// valueDiff compares two generic values (DecodeValue's types, the
// reference decoders' types, or encoding/json's with UseNumber) and returns
// where they differ, or "" when they are equal. Integers compare by value
// whatever their Go type; floats by value (NaN equals NaN).
func valueDiff(want, got any, o eqOpts) string {
	return diffAt("$", want, got, o)
}

func diffAt(path string, want, got any, o eqOpts) string {
	if o.dates {
		wt, wok := want.(time.Time)
		gt, gok := got.(time.Time)
		switch {
		case wok && !sameInstant(wt, got):
			return fmt.Sprintf("%s: got %T %v, want the date %v", path, got, got, wt)
		case !wok && gok && !sameInstant(gt, want):
			return fmt.Sprintf("%s: got the date %v, want %T %v", path, gt, want, want)
		case wok || gok:
			return ""
		}
	}
	if wn, ok := numOf(want); ok {
		gn, ok := numOf(got)
		if !ok {
			return fmt.Sprintf("%s: got %T %#v, want number %v", path, got, got, want)
		}
		if o.jsonKind {
			if _, isJSON := want.(json.Number); !isJSON {
				o.jsonKind = false
			}
		}
		if !wn.equal(gn, o) {
			return fmt.Sprintf("%s: got %T %v, want %T %v", path, got, got, want, want)
		}
		return ""
	}
	switch w := want.(type) {
	case nil:
		if got != nil {
			return fmt.Sprintf("%s: got %T %#v, want nil", path, got, got)
		}
	case bool, string:
		if got != want {
			return fmt.Sprintf("%s: got %T %#v, want %T %#v", path, got, got, want, want)
		}
	case time.Time:
		if g, ok := got.(time.Time); !ok || !g.Equal(w) {
			return fmt.Sprintf("%s: got %T %v, want the date %v", path, got, got, w)
		}
	case []byte:
		g, ok := got.([]byte)
		if !ok || !bytes.Equal(g, w) {
			return fmt.Sprintf("%s: got %T %#v, want []byte %x", path, got, got, w)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %T %#v, want %d-element list", path, got, got, len(w))
		}
		for i := range w {
			if d := diffAt(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], o); d != "" {
				return d
			}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %T %#v, want %d-entry dict %#v", path, got, got, len(w), w)
		}
		ks := make([]string, 0, len(w))
		for k := range w {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s: key %q missing", path, k)
			}
			if d := diffAt(path+"."+k, w[k], gv, o); d != "" {
				return d
			}
		}
	default:
		return fmt.Sprintf("%s: unexpected want type %T", path, want)
	}
	return ""
}

// sameInstant reports whether v stands for the instant t: a time.Time, the
// RFC 3339 text of t, its epoch seconds as an integer (when t is whole
// seconds) or as the float nearest to it, or a float that t is the
// rounding of to the nanosecond (a CBOR tag 1 float made a timestamp: the
// float's shortest decimal, rounded, so within half a nanosecond and half
// the float's spacing).
func sameInstant(t time.Time, v any) bool {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	at := new(big.Rat).SetFrac(new(big.Int).Add(new(big.Int).Mul(big.NewInt(sec), big.NewInt(1e9)), big.NewInt(nsec)), big.NewInt(1e9))
	switch x := v.(type) {
	case time.Time:
		return x.Unix() == sec && int64(x.Nanosecond()) == nsec
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		return err == nil && p.Unix() == sec && int64(p.Nanosecond()) == nsec
	}
	n, ok := numOf(v)
	switch {
	case !ok:
		return false
	case n.isInt:
		return nsec == 0 && n.i.Cmp(big.NewInt(sec)) == 0
	case math.IsNaN(n.f) || math.IsInf(n.f, 0):
		return false
	}
	if f, _ := at.Float64(); f == n.f {
		return true
	}
	a := math.Abs(n.f)
	tol := new(big.Rat).SetFloat64((math.Nextafter(a, math.Inf(1)) - a) / 2)
	tol.Add(tol, big.NewRat(1, 2e9))
	d := new(big.Rat).Sub(at, new(big.Rat).SetFloat64(n.f))
	return d.Abs(d).Cmp(tol) <= 0
}

// requireValue fails when got differs from want (see valueDiff).
func requireValue(t testing.TB, want, got any, what string) {
	t.Helper()
	if d := valueDiff(want, got, eqOpts{}); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// fieldsDump lists the typed keys present in f with their values (raw
// list/dict values decoded), for comparing two Fields.
func fieldsDump(t testing.TB, f *Fields) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k := Key(0); k < numKeys; k++ {
		if !f.Has(k) {
			continue
		}
		switch keys[k].kind {
		case kindBool:
			out[k.Name()] = f.Bool(k, false)
		case kindID, kindUint:
			out[k.Name()] = f.Uint(k)
		case kindStr, kindEnum:
			out[k.Name()] = f.String(k)
		default:
			out[k.Name()] = mustValue(t, f.Raw(k))
		}
	}
	return out
}

// requireSameMessage fails unless a and b carry the same message: the same
// head fields and the same decoded Dict, Opt, Args and Kwargs values.
func requireSameMessage(t testing.TB, want, got *Message, o eqOpts, what string) {
	t.Helper()
	if want.Type != got.Type || want.ReqType != got.ReqType || want.Request != got.Request ||
		want.ID != got.ID || want.ID2 != got.ID2 || want.Transparent != got.Transparent ||
		want.HasDict != got.HasDict {
		t.Fatalf("%s: head differs:\n got %+v\nwant %+v", what, headOf(got), headOf(want))
	}
	if !bytes.Equal(want.URI, got.URI) {
		t.Fatalf("%s: URI: got %q, want %q", what, got.URI, want.URI)
	}
	if want.Dict.Present() != got.Dict.Present() {
		t.Fatalf("%s: Dict present: got %v, want %v", what, got.Dict.Present(), want.Dict.Present())
	}
	for _, p := range []struct {
		name      string
		want, got Raw
	}{{"Dict", want.Dict, got.Dict}, {"Args", want.Args, got.Args}, {"Kwargs", want.Kwargs, got.Kwargs}} {
		if p.want.Present() != p.got.Present() {
			t.Fatalf("%s: %s present: got %v, want %v", what, p.name, p.got.Present(), p.want.Present())
		}
		if d := valueDiff(mustValue(t, p.want), mustValue(t, p.got), o); d != "" {
			t.Fatalf("%s: %s: %s", what, p.name, d)
		}
	}
	if d := valueDiff(fieldsDump(t, &want.Opt), fieldsDump(t, &got.Opt), o); d != "" {
		t.Fatalf("%s: Opt: %s", what, d)
	}
}

type head struct {
	Type, ReqType        Code
	Request, ID, ID2     uint64
	Transparent, HasDict bool
}

func headOf(m *Message) head {
	return head{m.Type, m.ReqType, m.Request, m.ID, m.ID2, m.Transparent, m.HasDict}
}

// nested returns depth arrays nested in one another around a 1, in ser.
func nested(ser Serializer, depth int) []byte {
	var b []byte
	for i := 0; i < depth; i++ {
		switch ser {
		case JSON:
			b = append(b, '[')
		case MsgPack:
			b = append(b, 0x91)
		case CBOR:
			b = append(b, 0x81)
		}
	}
	b = append(b, map[Serializer]byte{JSON: '1', MsgPack: 0x01, CBOR: 0x01}[ser])
	if ser == JSON {
		b = append(b, bytes.Repeat([]byte{']'}, depth)...)
	}
	return b
}
