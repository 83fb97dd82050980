package proto

import (
	"reflect"
	"strings"
	"testing"
)

// A JSON (or indefinite-length CBOR) value transcoded to MsgPack or CBOR
// gets each container's head once its elements are counted. Moving the
// elements behind the shortest head cost the input's size once per level:
// a 16 MiB message nested 99 deep took 300 ms of a shard to transcode,
// against 10 flat. Past 4 KiB the elements stay put under a longer head,
// so the bytes moved are bounded by 4 KiB per container, and the value is
// the same.
func TestDeepTranscodeMovesLittle(t *testing.T) {
	const depth = 99
	leaf := `"` + strings.Repeat("a", 1<<20) + `"`
	for _, in := range []string{
		strings.Repeat("[", depth) + leaf + strings.Repeat("]", depth),
		strings.Repeat(`[1,{"k":`, depth/2) + leaf + strings.Repeat("}]", depth/2),
	} {
		for _, to := range []Serializer{MsgPack, CBOR} {
			moved := 0
			testHookMoved = func(n int) { moved += n }
			out, err := Transcode(nil, to, Raw{Ser: JSON, B: []byte(in)})
			testHookMoved = nil
			if err != nil {
				t.Fatal(err)
			}
			if moved > 2*depth*maxMoved {
				t.Errorf("%v: %d bytes moved for a %d-byte value %d deep, want at most %d", to, moved, len(in), depth, 2*depth*maxMoved)
			}
			want, err := DecodeValue(Raw{Ser: JSON, B: []byte(in)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeValue(Raw{Ser: to, B: out})
			if err != nil {
				t.Fatalf("%v: the output does not decode: %v", to, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%v: the value changed", to)
			}
			// And back, through the long heads.
			back, err := Transcode(nil, JSON, Raw{Ser: to, B: out})
			if err != nil || string(back) != in {
				t.Fatalf("%v: back to JSON: %v, equal %v", to, err, string(back) == in)
			}
		}
	}
	// Small containers keep their shortest heads.
	out, err := Transcode(nil, MsgPack, Raw{Ser: JSON, B: []byte(`[[1,2],{"a":[3]}]`)})
	if err != nil || string(out) != "\x92\x92\x01\x02\x81\xa1a\x91\x03" {
		t.Fatalf("small: %x %v", out, err)
	}
}
