package proto

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// A JavaScript Date as wampy 8.0.2's serializers write it (node, wampy's
// MsgpackSerializer and CborSerializer, i.e. msgpackr 2.1.4 and cbor-x):
//
//	new MsgpackSerializer().encode(new Date(Date.UTC(2026, 11, 3, 19, 58, 56, 123)))
//
// msgpackr picks the timestamp's format by the Date: 32 bits for whole
// seconds in [0, 2^32), 64 for [0, 2^34), 96 otherwise; cbor-x writes tag 1
// on a uint32 for whole seconds, else on a float64 of seconds.
var wampyDates = []struct {
	name          string
	at            time.Time
	msgpack, cbor string
	json          string // as JSON.stringify would, in time.RFC3339Nano form
}{
	{"timestamp 32", time.Date(2026, 12, 3, 19, 58, 56, 0, time.UTC),
		"d6ff6b11ca00", "c11a6b11ca00", `"2026-12-03T19:58:56Z"`},
	{"timestamp 64", time.Date(2026, 12, 3, 19, 58, 56, 123e6, time.UTC),
		"d7ff1d5353006b11ca00", "c1fb41dac4728007df3b", `"2026-12-03T19:58:56.123Z"`},
	{"timestamp 96", time.Date(2600, 1, 1, 0, 0, 0, 5e6, time.UTC),
		"c70cff004c4b4000000004a0fe7280", "c1fb421283f9ca00051f", `"2600-01-01T00:00:00.005Z"`},
	{"timestamp 96 before 1970", time.Date(1969, 12, 31, 23, 59, 59, 500e6, time.UTC),
		"c70cff1dcd6500ffffffffffffffff", "c1fbbfe0000000000000", `"1969-12-31T23:59:59.5Z"`},
}

// publishWith returns a PUBLISH whose Arguments are [date] and ArgumentsKw
// {"at": date}, date being encoded bytes of ser.
func publishWith(t *testing.T, ser Serializer, date []byte) []byte {
	t.Helper()
	w := wr{ser: ser}
	w.arr(1)
	w.b = append(w.b, date...)
	args := w.b
	w = wr{ser: ser}
	w.mapH(1)
	_ = w.strS("at")
	w.b = append(w.b, date...)
	return mustAppend(t, ser, &Message{Type: CodePublish, Request: 1, URI: []byte("com.t"),
		Args: Raw{Ser: ser, B: args}, Kwargs: Raw{Ser: ser, B: w.b}})
}

// A MsgPack peer's Date used to end its session: every extension type but
// JavaScript undefined was refused ("msgpack extension types are not
// supported"). The timestamp extension (type -1) is read in its three
// formats, as the instant it is.
func TestTimestampDecode(t *testing.T) {
	for _, c := range wampyDates {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(MsgPack, publishWith(t, MsgPack, mustHex(t, c.msgpack)))
			if err != nil {
				t.Fatalf("PUBLISH with a Date: %v", err)
			}
			args, _ := mustValue(t, m.Args).([]any)
			if got, ok := args[0].(time.Time); !ok || !got.Equal(c.at) || got.Location() != time.UTC {
				t.Fatalf("DecodeValue: %#v, want %v in UTC", args[0], c.at)
			}
			// And back: AppendValue writes a time.Time as the same bytes.
			b, err := AppendValue(nil, MsgPack, c.at)
			if err != nil || showHex(b) != c.msgpack {
				t.Fatalf("AppendValue(MsgPack, %v) = %x %v, want %s", c.at, b, err, c.msgpack)
			}
		})
	}
	// The extremes of each format.
	for _, c := range []struct {
		in        string
		sec, nsec int64
	}{
		{"d6ffffffffff", 1<<32 - 1, 0},
		{"d7ffee6b27ffffffffff", 1<<34 - 1, 999999999},
		{"c70cff3b9ac9ff7fffffffffffffff", math.MaxInt64, 999999999},
		{"c70cff000000008000000000000000", math.MinInt64, 0},
	} {
		v := mustValue(t, Raw{Ser: MsgPack, B: mustHex(t, c.in)})
		if got, ok := v.(time.Time); !ok || got.Unix() != c.sec || int64(got.Nanosecond()) != c.nsec {
			t.Fatalf("%s: %#v, want %d s %d ns", c.in, v, c.sec, c.nsec)
		}
	}
}

// To a MsgPack peer the Date goes as it came, byte for byte.
func TestTimestampPassthrough(t *testing.T) {
	for _, c := range wampyDates {
		in := publishWith(t, MsgPack, mustHex(t, c.msgpack))
		m := mustDecode(t, MsgPack, in)
		if out := mustAppend(t, MsgPack, m); !bytes.Equal(out, in) {
			t.Fatalf("%s: re-encoded %x, want %x", c.name, out, in)
		}
		// Transcode re-encodes, in the same (smallest) format.
		if out, err := Transcode(nil, MsgPack, m.Args); err != nil || !bytes.Equal(out, m.Args.B) {
			t.Fatalf("%s: Transcode to MsgPack: %x %v, want %x", c.name, out, err, m.Args.B)
		}
	}
}

// To a JSON peer a Date is the text JSON.stringify writes for it, in UTC.
func TestTimestampToJSON(t *testing.T) {
	for _, c := range wampyDates {
		m := mustDecode(t, MsgPack, publishWith(t, MsgPack, mustHex(t, c.msgpack)))
		js, err := Append(nil, JSON, m)
		want := `[16,1,{},"com.t",[` + c.json + `],{"at":` + c.json + `}]`
		if err != nil || string(js) != want {
			t.Fatalf("%s: to JSON %s %v, want %s", c.name, js, err, want)
		}
		if b, err := AppendValue(nil, JSON, c.at); err != nil || string(b) != c.json {
			t.Fatalf("%s: AppendValue(JSON) %s %v, want %s", c.name, b, err, c.json)
		}
	}
	// RFC 3339 has four-digit years: beyond them there is no JSON form, as
	// for NaN.
	for _, in := range []string{"c70cff000000000000003afff44180" /* 10000-01-01 */, "c70cff00000000fffffff1868b83ff" /* -0001-12-31T23:59:59 */} {
		_, err := Transcode(nil, JSON, Raw{Ser: MsgPack, B: mustHex(t, in)})
		requireErrorContains(t, err, ErrNotJSONable.Msg(), "year beyond RFC 3339 "+in)
	}
	for _, c := range []struct{ in, want string }{
		{"c70cff3b9ac9ff0000003afff4417f", `"9999-12-31T23:59:59.999999999Z"`},
		{"c70cff00000000fffffff1868b8400", `"0000-01-01T00:00:00Z"`},
	} {
		if out, err := Transcode(nil, JSON, Raw{Ser: MsgPack, B: mustHex(t, c.in)}); err != nil || string(out) != c.want {
			t.Fatalf("%s to JSON: %s %v, want %s", c.in, out, err, c.want)
		}
	}
}

// To a CBOR peer a Date is an epoch-based date/time (tag 1), as cbor-x
// writes it: the same bytes.
func TestTimestampToCBOR(t *testing.T) {
	for _, c := range wampyDates {
		m := mustDecode(t, MsgPack, publishWith(t, MsgPack, mustHex(t, c.msgpack)))
		out := mustAppend(t, CBOR, m)
		if want := publishWith(t, CBOR, mustHex(t, c.cbor)); !bytes.Equal(out, want) {
			t.Fatalf("%s: to CBOR %x, want %x", c.name, out, want)
		}
		if b, err := AppendValue(nil, CBOR, c.at); err != nil || showHex(b) != c.cbor {
			t.Fatalf("%s: AppendValue(CBOR) %x %v, want %s", c.name, b, err, c.cbor)
		}
	}
	// Seconds beyond 32 bits and before 1970 are tagged integers too; a
	// fraction is the float nearest to the instant. Outside the years 1
	// to 9999, which cbor2 refuses under tag 1 (autobahn-python would drop
	// the connection), the number goes without the tag.
	for _, c := range []struct{ in, want string }{
		{"c70cff000186a00000003afff4417f", "c1fb424d7ffa20bf8003"}, // 9999-12-31T23:59:59.0001
		{"c70cff3b9ac9ff0000003afff4417f", "fb424d7ffa20c00000"},   // 9999-12-31T23:59:59.999999999: the float is 10000-01-01
		{"c70cff00000000ffffffffffffffff", "c120"},
		{"c70cff00000001ffffffffffffffff", "c1fbbfefffffff768fa1"}, // -0.999999999
		{"c70cff00000000fffffff1886e0900", "c13b0000000e7791f6ff"}, // 0001-01-01
		{"c70cff000000000000003afff44180", "1b0000003afff44180"},   // 10000-01-01
		{"c70cff00000000fffffff1886e08ff", "3b0000000e7791f700"},   // 0000-12-31T23:59:59
		{"c70cff3b9ac9ff7fffffffffffffff", "fb43e0000000000000"},   // 2^63 - 1 + 0.999999999
	} {
		if out, err := Transcode(nil, CBOR, Raw{Ser: MsgPack, B: mustHex(t, c.in)}); err != nil || showHex(out) != c.want {
			t.Fatalf("%s to CBOR: %x %v, want %s", c.in, out, err, c.want)
		}
	}
}

// A cbor-x peer's Date (tag 1) reaches a MsgPack peer as a timestamp in
// the format msgpackr would have chosen: msgpackr decodes it as a Date
// again, where the bare number it got before was a number.
func TestCBOREpochToTimestamp(t *testing.T) {
	for _, c := range wampyDates {
		m := mustDecode(t, CBOR, publishWith(t, CBOR, mustHex(t, c.cbor)))
		out := mustAppend(t, MsgPack, m)
		if want := publishWith(t, MsgPack, mustHex(t, c.msgpack)); !bytes.Equal(out, want) {
			t.Fatalf("%s: to MsgPack %x, want %x", c.name, out, want)
		}
	}
	for _, c := range []struct {
		name, in, want string
	}{
		// Every CBOR number form under tag 1.
		{"uint8", "c118ff", "d6ff000000ff"},
		{"negative", "c120", "c70cff00000000ffffffffffffffff"},
		{"uint64", "c11b0000003afff4417f", "c70cff000000000000003afff4417f"},     // 9999-12-31T23:59:59
		{"int64", "c13b0000000e7791f6ff", "c70cff00000000fffffff1886e0900"},      // 0001-01-01
		{"half float", "c1f93e00", "d7ff7735940000000001"},                       // 1.5
		{"float32", "c1fa3fc00000", "d7ff7735940000000001"},                      // 1.5
		{"tiny float", "c1fb3ddb7cdfd9d7bdbb", "d6ff00000000"},                   // 1e-10 rounds to 0 ns
		{"float 2^34", "c1fb4210000000000000", "c70cff000000000000000400000000"}, // 2514
		{"rounded up", "c1fb3feffffffffffffd", "d6ff00000001"},                   // 0.9999999999999997
		// An unknown tag around tag 1 is read through as before.
		{"tag 1 in a tag", "d863c10a", "d6ff0000000a"},
	} {
		out, err := Transcode(nil, MsgPack, Raw{Ser: CBOR, B: mustHex(t, c.in)})
		if err != nil || showHex(out) != c.want {
			t.Fatalf("%s: %s to MsgPack: %x %v, want %s", c.name, c.in, out, err, c.want)
		}
	}
	// Beyond the years 1 to 9999 (datetime's, cbor2 refuses the tag
	// there), or no instant, or on anything but a number: refused, as
	// Decode refuses such a payload (they were read through before, the
	// number passed on, the tag with it to CBOR peers).
	for _, c := range []struct{ name, in string }{
		{"uint64", "c11b7fffffffffffffff"},
		{"int64 min", "c13b7fffffffffffffff"},
		{"float -2^63", "c1fbc3e0000000000000"},
		{"uint64 beyond int64", "c11b8000000000000000"},
		{"below int64", "c13b8000000000000000"},
		{"float 2^63", "c1fb43e0000000000000"},
		{"NaN (cbor-x's invalid Date)", "c1fb7ff8000000000000"},
		{"infinity", "c1f97c00"},
		{"year 10000", "c11b0000003afff44180"},
		{"float year 10000", "c1fb424d7ffa20c00000"},
		{"text", "c16161"},
		{"another tag in tag 1", "c1d8630a"},
	} {
		for _, to := range []Serializer{MsgPack, CBOR, JSON} {
			if out, err := Transcode(nil, to, Raw{Ser: CBOR, B: mustHex(t, c.in)}); err != errCBORTagContent {
				t.Fatalf("%s: %s to %v: %x %v, want %v", c.name, c.in, to, out, err, errCBORTagContent)
			}
		}
	}
	// To JSON a tag 1 stays the number it tags. To CBOR it stays a date
	// (it was dropped, as every other tag but the bignums' is, though
	// Transcode promised each serializer's dates).
	m := mustDecode(t, CBOR, publishWith(t, CBOR, mustHex(t, wampyDates[1].cbor)))
	if js := mustAppend(t, JSON, m); string(js) != `[16,1,{},"com.t",[1.796327936123e+09],{"at":1.796327936123e+09}]` {
		t.Fatalf("to JSON: %s", js)
	}
	if out, err := Transcode(nil, CBOR, m.Args); err != nil || showHex(out) != "81c1fb41dac4728007df3b" {
		t.Fatalf("Transcode to CBOR: %x %v", out, err)
	}
	for _, c := range []struct{ name, in, want string }{
		{"integer", "81c11a5f5e1000", "81c11a5f5e1000"},
		{"negative", "81c120", "81c120"},
		{"half float", "81c1f93e00", "81c1fb3ff8000000000000"},
	} {
		if out, err := Transcode(nil, CBOR, Raw{Ser: CBOR, B: mustHex(t, c.in)}); err != nil || showHex(out) != c.want {
			t.Fatalf("%s: %s to CBOR: %x %v, want %s", c.name, c.in, out, err, c.want)
		}
	}
	if v := mustValue(t, m.Args); v.([]any)[0] != 1796327936.123 {
		t.Fatalf("DecodeValue: %#v, want the number", v)
	}
}

// In Options and Details the router reads a tag 1 number as the number it
// is, and a MsgPack peer given them must read the same: only payloads carry
// dates across.
func TestCBOREpochInDetailsStaysNumber(t *testing.T) {
	in := mustHex(t, stripSpaces("85 1830 01 a2 6774696d656f7574 c11903e8 67785f7374616d70 c11a6b11ca00 65636f6d2e70 81c11a6b11ca00"))
	m := mustDecode(t, CBOR, in) // CALL {timeout: 1(1000), x_stamp: 1(…)} [1(…)]
	if m.Opt.Uint(KeyTimeout) != 1000 {
		t.Fatalf("timeout %d, want 1000", m.Opt.Uint(KeyTimeout))
	}
	out := mustAppend(t, MsgPack, m)
	mp := mustDecode(t, MsgPack, out)
	if mp.Opt.Uint(KeyTimeout) != 1000 || showHex(mp.Dict.B) != "82a774696d656f7574cd03e8a7785f7374616d70ce6b11ca00" {
		t.Fatalf("Options in MsgPack: %x", mp.Dict.B)
	}
	if showHex(mp.Args.B) != "91d6ff6b11ca00" {
		t.Fatalf("Arguments in MsgPack: %x, want a timestamp", mp.Args.B)
	}
}

// Extension type -1 in any other form, nanoseconds of a second or more, and
// every other extension type but JavaScript undefined are refused, with a
// text that says which extensions are supported.
func TestTimestampRefused(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"fixext 1 (msgpackr's invalid Date)", "d4ffff", "timestamp"},
		{"fixext 2", "d5ff0000", "timestamp"},
		{"fixext 16", "d8ff" + strings.Repeat("00", 16), "timestamp"},
		{"ext 8 of 4 bytes", "c704ff00000001", "timestamp"},
		{"ext 8 of 8 bytes", "c708ff0000000000000001", "timestamp"},
		{"ext 16 of 12 bytes", "c8000cff" + strings.Repeat("00", 12), "timestamp"},
		{"ext 8 of 0 bytes", "c700ff", "timestamp"},
		{"timestamp 64, 10^9 ns", "d7ffee6b280000000000", "nanoseconds below 10^9"},
		{"timestamp 64, 2^30-1 ns", "d7fffffffffc00000000", "nanoseconds below 10^9"},
		{"timestamp 96, 10^9 ns", "c70cff3b9aca00" + strings.Repeat("00", 8), "nanoseconds below 10^9"},
		{"timestamp 96, 2^32-1 ns", "c70cffffffffff" + strings.Repeat("00", 8), "nanoseconds below 10^9"},
		{"fixext 1 of type 1", "d40100", "except type -1 (timestamp) and fixext 1 of type 0"},
		{"fixext 4 of type 1", "d60100000000", "except type -1 (timestamp) and fixext 1 of type 0"},
		{"fixext 4 of type -2", "d6fe00000000", "except type -1 (timestamp) and fixext 1 of type 0"},
		{"ext 8 of 12 bytes, type 1", "c70c01" + strings.Repeat("00", 12), "except type -1 (timestamp) and fixext 1 of type 0"},
		{"fixext 2 of type 0", "d5000000", "except type -1 (timestamp) and fixext 1 of type 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(MsgPack, publishWith(t, MsgPack, mustHex(t, c.in)))
			requireErrorContains(t, err, c.want, "Decode")
			requireTypedError(t, err, nil, "Decode")
			for _, to := range serializers {
				_, err := Transcode(nil, to, Raw{Ser: MsgPack, B: mustHex(t, c.in)})
				requireErrorContains(t, err, c.want, "Transcode to "+to.String())
			}
		})
	}
}

// Transcoding a message without dates costs no more than before (the
// benchmarks say so); a date itself costs no allocation either.
func TestTimestampTranscodeAllocs(t *testing.T) {
	m := mustDecode(t, MsgPack, publishWith(t, MsgPack, mustHex(t, wampyDates[1].msgpack)))
	mc := mustDecode(t, CBOR, publishWith(t, CBOR, mustHex(t, wampyDates[1].cbor)))
	var e Encoder
	buf := make([]byte, 0, 256)
	for _, c := range []struct {
		m  *Message
		to Serializer
	}{{m, JSON}, {m, CBOR}, {mc, MsgPack}} {
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = e.Append(buf[:0], c.to, c.m); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("date to %s: %.0f allocations per message", c.to, allocs)
		}
	}
}
