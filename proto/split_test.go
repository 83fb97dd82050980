package proto

import (
	"errors"
	"fmt"
	"testing"
)

// The decoder works on whole messages (the transports deliver one frame at a
// time), so the STYLE split test becomes a prefix test: every strict prefix
// of a valid message or value, cut at every byte offset, must be refused
// with a *Error — never decoded, never a panic — and the whole must still
// decode.

// encoded is an encoded message or value and its serializer.
type encoded struct {
	ser Serializer
	b   []byte
}

// validMessages returns valid encoded messages: every built message in every
// serializer, plus the test suite's samples when they are present.
func validMessages(t *testing.T) map[string]encoded {
	t.Helper()
	out := map[string]encoded{}
	for _, bm := range allMessages(t) {
		for _, ser := range serializers {
			out[bm.name+"/"+ser.String()] = encoded{ser, mustAppend(t, ser, bm.m)}
		}
	}
	// Hand-written forms our encoder does not produce.
	for name, hx := range map[string]string{
		"cbor indefinite message":  "9f1830 01 bf6774696d656f757405ff 6170 9f01ff bf6161f5ff ff",
		"cbor tagged message":      "d9d9f7 841830 01 a0 6170",
		"cbor chunked uri":         "841830 01 a0 7f616161626163ff",
		"msgpack wide integers":    "9430 cf0000000000000001 de0000 da000170",
		"msgpack float32 in args":  "9530 01 80 a170 91 ca3fc00000",
		"cbor half float in args":  "851830 01 a0 6170 81 f93c00",
		"cbor bignum in kwargs":    "861830 01 a0 6170 80 a16162 c249010000000000000000",
		"cbor transparent payload": "851830 01 a0 6170 5f4101 4102ff",
	} {
		ser := MsgPack
		if name[:4] == "cbor" {
			ser = CBOR
		}
		out[name] = encoded{ser, mustHex(t, stripSpaces(hx))}
	}
	files, err := loadSuiteOptional()
	if err != nil && !errors.Is(err, errNoSuite) {
		t.Fatal(err)
	}
	for fname, f := range files {
		for i, s := range f.Samples {
			for sname, vs := range s.Serializers {
				ser, ok := suiteSerializers[sname]
				if !ok {
					continue // ubjson, flatbuffers
				}
				for j, v := range vs {
					out[fmt.Sprintf("suite/%s/%d/%s/%d", fname, i, sname, j)] = encoded{ser, mustHex(t, v.BytesHex)}
				}
			}
		}
	}
	return out
}

func stripSpaces(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// TestPrefixes cuts every valid message at every byte offset.
func TestPrefixes(t *testing.T) {
	var d Decoder
	var m Message
	n := 0
	for name, v := range validMessages(t) {
		if err := d.Decode(v.ser, v.b, &m); err != nil {
			t.Fatalf("%s: whole message: %v", name, err)
		}
		for i := 0; i < len(v.b); i++ {
			// An exact-size copy, so that any read past the prefix would
			// panic rather than see the rest of the message.
			p := make([]byte, i)
			copy(p, v.b)
			err := d.Decode(v.ser, p, &m)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s cut at %d/%d (%s): got %v, want a *proto.Error", name, i, len(v.b), show(v.ser, p), err)
			}
			n++
		}
	}
	if n < 1000 {
		t.Fatalf("only %d prefixes tested", n)
	}
}

// TestValuePrefixes cuts encoded values at every offset: DecodeValue and
// Transcode must refuse every strict prefix that is not itself a complete
// value (a JSON number's prefix can be one: "12" of "123").
func TestValuePrefixes(t *testing.T) {
	for _, cv := range valueCorpus() {
		for _, ser := range serializers {
			r := mustEncodeValue(t, ser, cv.v)
			if len(r.B) > 4096 {
				continue // the long strings and lists add time, not cases
			}
			for i := 0; i < len(r.B); i++ {
				p := Raw{Ser: ser, B: make([]byte, i)}
				copy(p.B, r.B)
				v, err := DecodeValue(p)
				_, terr := Transcode(nil, CBOR, p)
				if (err == nil) != (terr == nil) {
					t.Fatalf("%s/%s cut at %d: DecodeValue %v, Transcode %v", cv.name, ser, i, err, terr)
				}
				if err == nil {
					if _, isNum := numOf(v); !isNum || ser != JSON {
						t.Fatalf("%s/%s cut at %d (%s): decoded %#v", cv.name, ser, i, show(ser, p.B), v)
					}
				}
			}
		}
	}
}
