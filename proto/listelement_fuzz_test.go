package proto

import (
	"reflect"
	"testing"
)

// FuzzListElement checks ListElement, which route uses to keep a meta
// call's argument (a testament's payload) as its sender encoded it, against
// the decoders it must agree with. The first input byte picks the
// serializer (b%3), the second the element (b%8); the rest is a value.
//
//   - it never panics;
//   - on a list DecodeValue accepts, it finds element i exactly when the
//     list has one, and the element decodes to the list's element i;
//   - the element is marked Normalize exactly when CheckArgs marks a list
//     holding it alone: a same-serializer peer then gets the same bytes
//     whether the value came inside a meta call or a PUBLISH.
//
// Run with: go test -run '^$' -fuzz '^FuzzListElement$' -fuzztime 30s ./proto
func FuzzListElement(f *testing.F) {
	for _, s := range []struct {
		ser Serializer
		i   byte
		in  string
	}{
		// A testament's call: [topic, args, kwargs, options].
		{JSON, 1, `["com.x.gone", [1, "a", {"k": null}], {"k": [true]}, {}]`},
		{JSON, 2, ` [ "t" , [] , {"\u00e9": "\u0000AQI="} ] `},
		// MsgPack: undefined (normalized), a timestamp, bin.
		{MsgPack, 1, "\x93\xa1t\x92\xd4\x00\x00\xd6\xff\x00\x00\x00\x01\xc4\x01\xff"},
		// CBOR: a bignum, a stripped tag, a date text, indefinite lengths.
		{CBOR, 1, "\x84\x61t\x83\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00\xd8\x20\x61u\xc0\x6a2020-01-01\xbf\x61k\xf7\xff\x9f\xff"},
		{CBOR, 0, "\x9f\xd9\xd9\xf7\x01\xff"},
	} {
		f.Add(append([]byte{byte(s.ser-1) + 3*s.i, s.i}, s.in...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		ser := serializers[int(b[0])%3]
		i := int(b[1] % 8)
		r := Raw{Ser: ser, B: b[2:]}
		el, ok := ListElement(r, i)
		v, err := DecodeValue(r)
		if err != nil {
			return // ListElement reads only up to element i: no claim
		}
		list, isList := v.([]any)
		if !isList {
			if ok {
				t.Fatalf("ListElement(%d) found an element in a %T: %s", i, v, show(ser, r.B))
			}
			return
		}
		if ok != (i < len(list)) {
			t.Fatalf("ListElement(%d) ok=%v on a list of %d: %s", i, ok, len(list), show(ser, r.B))
		}
		if !ok {
			return
		}
		ev, err := DecodeValue(el)
		if err != nil {
			t.Fatalf("element %d does not decode: %v\n list: %s\n elem: %s", i, err, show(ser, r.B), show(ser, el.B))
		}
		if !reflect.DeepEqual(ev, list[i]) && !sameNaN(ev, list[i]) {
			t.Fatalf("element %d: got %#v, want %#v\n list: %s", i, ev, list[i], show(ser, r.B))
		}
		var one []byte
		switch ser {
		case JSON:
			one = append(append([]byte("["), el.B...), ']')
		case MsgPack:
			one = append([]byte{0x91}, el.B...)
		case CBOR:
			one = append([]byte{0x81}, el.B...)
		}
		alone := Raw{Ser: ser, B: one}
		if !CheckArgs(&alone, false) {
			t.Fatalf("element %d alone in a list is not valid Arguments: %s", i, show(ser, one))
		}
		if alone.Normalize != el.Normalize {
			t.Fatalf("element %d marked Normalize=%v, alone in a list %v: %s", i, el.Normalize, alone.Normalize, show(ser, el.B))
		}
	})
}

// sameNaN reports whether a and b are both NaN floats.
func sameNaN(a, b any) bool {
	x, ok1 := a.(float64)
	y, ok2 := b.(float64)
	return ok1 && ok2 && x != x && y != y
}
