package proto

import (
	"testing"
)

// JavaScript undefined, as wampy 8.0.2's MsgPack (msgpackr) and CBOR (cbor-x)
// serializers write it for options the application did not give: MsgPack
// fixext 1 of type 0 (d4 00 00) and CBOR simple value 23 (f7). The bytes
// below are what wampy's serializers produce (node, wampy 8.0.2):
//
//	new MsgpackSerializer().encode([32, 1, {match: undefined, get_retained: undefined}, 'com.t'])
//	new MsgpackSerializer().encode([48, 2, {}, 'com.p', [undefined, 1], {a: undefined, b: 2}])
//
// and the same with CborSerializer.
var wampyUndefined = []struct {
	ser            Serializer
	subscribe, cal string
}{
	{MsgPack,
		"942001de0002a56d61746368d40000ac6765745f72657461696e6564d40000a5636f6d2e74",
		"963002de0000a5636f6d2e7092d4000001de0002a161d40000a16202"},
	{CBOR,
		"84182001b90002656d61746368f76c6765745f72657461696e6564f765636f6d2e74",
		"86183002b9000065636f6d2e7082f701b900026161f7616202"},
}

// An undefined option is an absent key: wampy's plain SUBSCRIBE is an exact
// subscription without get_retained (edgewamp once aborted the session with
// "SUBSCRIBE.Options.match must be a string" or "msgpack extension types are
// not supported").
func TestUndefinedOptionIsAbsent(t *testing.T) {
	for _, c := range wampyUndefined {
		t.Run(c.ser.String(), func(t *testing.T) {
			m, err := Decode(c.ser, mustHex(t, c.subscribe))
			if err != nil {
				t.Fatalf("wampy SUBSCRIBE: %v", err)
			}
			if m.Type != CodeSubscribe || string(m.URI) != "com.t" || m.Opt.Len() != 0 || m.Opt.Match() != MatchExact {
				t.Fatalf("SUBSCRIBE decoded as %v %q with %d option keys", m.Type, m.URI, m.Opt.Len())
			}
			// The raw Options keep the undefined members, and re-encoded
			// for a JSON peer they are dropped, as JSON.stringify drops them.
			js, err := Append(nil, JSON, m)
			if err != nil || string(js) != `[32,1,{},"com.t"]` {
				t.Fatalf("to JSON: %s %v", js, err)
			}
		})
	}
}

// Every kind of option key (bool, id, integer, enum, string, list, dict)
// reads undefined as absent, and the keys around it are still read.
func TestUndefinedEveryOptionKind(t *testing.T) {
	for _, ser := range []Serializer{MsgPack, CBOR} {
		undef := map[Serializer][]byte{MsgPack: {0xd4, 0, 0}, CBOR: {0xf7}}[ser]
		keys := []string{"acknowledge", "caller", "timeout", "match", "procedure", "exclude", "exclude_authid", "roles", "x_custom"}
		// A dictionary of every key set to undefined, then "topic": "t".
		w := wr{ser: ser}
		w.mapH(len(keys) + 1)
		for _, k := range keys {
			_ = w.strS(k)
			w.b = append(w.b, undef...)
		}
		_ = w.strS("topic")
		_ = w.strS("t")
		dict := w.b
		msg, err := Append(nil, ser, &Message{Type: CodeEvent, ID: 1, ID2: 2, Dict: Raw{Ser: ser, B: dict}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(ser, msg)
		if err != nil {
			t.Fatalf("%s: %v", ser, err)
		}
		if m.Opt.Len() != 1 || m.Opt.String(KeyTopic) != "t" {
			t.Fatalf("%s: %d keys, topic %q; want only topic", ser, m.Opt.Len(), m.Opt.String(KeyTopic))
		}
		v, err := DecodeValue(m.Dict)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := v.(map[string]any); len(d) != 1 || d["topic"] != "t" {
			t.Fatalf("%s: DecodeValue(Details) = %v, want the undefined members left out", ser, v)
		}
	}
}

// In payloads undefined is transcoded as JSON.stringify would write it: a
// list element becomes null, a dictionary member is left out. So it is for
// a MsgPack peer too, whose decoder may not know the extension type
// (msgpack5, Autobahn|JS's, throws "unable to find ext type 0"); CBOR's
// undefined (f7) is carried as is to CBOR peers.
func TestUndefinedInPayload(t *testing.T) {
	for _, c := range wampyUndefined {
		t.Run(c.ser.String(), func(t *testing.T) {
			in := mustHex(t, c.cal)
			m, err := Decode(c.ser, in)
			if err != nil {
				t.Fatalf("wampy CALL: %v", err)
			}
			want := map[Serializer]string{
				MsgPack: "963002de0000a5636f6d2e7092c00181a16202",
				CBOR:    c.cal,
			}[c.ser]
			if norm := c.ser == MsgPack; m.Args.Normalize != norm || m.Kwargs.Normalize != norm {
				t.Fatalf("Args.Normalize %v, Kwargs.Normalize %v; want %v", m.Args.Normalize, m.Kwargs.Normalize, norm)
			}
			same, err := Append(nil, c.ser, m)
			if err != nil || showHex(same) != want {
				t.Fatalf("same serializer: %x %v, want %s", same, err, want)
			}
			// CheckArgs and CheckKwargs (a mesh peer's payload) mark it too.
			a, k := Raw{Ser: c.ser, B: m.Args.B}, Raw{Ser: c.ser, B: m.Kwargs.B}
			if !CheckArgs(&a, false) || !CheckKwargs(&k) || a.Normalize != m.Args.Normalize || k.Normalize != m.Kwargs.Normalize {
				t.Fatalf("CheckArgs, CheckKwargs: Normalize %v %v", a.Normalize, k.Normalize)
			}
			js, err := Append(nil, JSON, m)
			if err != nil || string(js) != `[48,2,{},"com.p",[null,1],{"b":2}]` {
				t.Fatalf("to JSON: %s %v", js, err)
			}
			other := map[Serializer]Serializer{MsgPack: CBOR, CBOR: MsgPack}[c.ser]
			ob, err := Append(nil, other, m)
			if err != nil {
				t.Fatal(err)
			}
			mo := mustDecode(t, other, ob)
			requireValue(t, []any{nil, int64(1)}, mustValue(t, mo.Args), "Args in "+other.String())
			requireValue(t, map[string]any{"b": int64(2)}, mustValue(t, mo.Kwargs), "Kwargs in "+other.String())
			// The dropped member shortens the target's map head.
			if want := map[Serializer]string{MsgPack: "81a16202", CBOR: "a1616202"}[other]; showHex(mo.Kwargs.B) != want {
				t.Fatalf("Kwargs in %s: %x, want %s", other, mo.Kwargs.B, want)
			}
			requireValue(t, []any{nil, int64(1)}, mustValue(t, m.Args), "DecodeValue(Args)")
			requireValue(t, map[string]any{"b": int64(2)}, mustValue(t, m.Kwargs), "DecodeValue(Kwargs)")
		})
	}
	// A MsgPack payload without undefined (a timestamp, the other
	// extension type taken) is not marked, and is copied as it came.
	in := mustHex(t, "95300180a1709292d6ff0000000181a162c0c0")
	m := mustDecode(t, MsgPack, in)
	if m.Args.Normalize {
		t.Fatal("a payload without undefined marked Normalize")
	}
	if out, err := Append(nil, MsgPack, m); err != nil || showHex(out) != showHex(in) {
		t.Fatalf("same serializer: %x %v, want the input unchanged", out, err)
	}
	// Other MsgPack extension types are still refused.
	if _, err := Decode(MsgPack, mustHex(t, "95300180a17091d40100")); err == nil {
		t.Fatal("fixext 1 of type 1 accepted")
	}
	if _, err := Decode(MsgPack, mustHex(t, "95300180a17091d5000000")); err == nil {
		t.Fatal("fixext 2 of type 0 accepted")
	}
}

// Transcoding a map that loses members to undefined rewrites a head that
// was longer than the new count needs (map16 of 20 members, 17 undefined).
func TestUndefinedShrinksMapHead(t *testing.T) {
	w := wr{ser: MsgPack}
	w.b = append(w.b, 0xde, 0, 20)
	for i := 0; i < 20; i++ {
		_ = w.strS(string(rune('a' + i)))
		if i < 17 {
			w.b = append(w.b, 0xd4, 0, 0)
		} else {
			w.uint(uint64(i))
		}
	}
	for _, to := range []Serializer{CBOR, MsgPack, JSON} {
		out, err := Transcode(nil, to, Raw{Ser: MsgPack, B: w.b})
		if err != nil {
			t.Fatal(err)
		}
		requireValue(t, map[string]any{"r": int64(17), "s": int64(18), "t": int64(19)}, mustValue(t, Raw{Ser: to, B: out}), to.String())
		if to != JSON && out[0] != map[Serializer]byte{CBOR: 0xa3, MsgPack: 0x83}[to] {
			t.Fatalf("%s head %x, want a 3-member map", to, out[0])
		}
	}
}

func showHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// ListElement returns an element of a list as it is encoded there, marked
// Normalize as Decode marks a payload holding the same (a MsgPack
// undefined), and nothing for an element past the end or a list that is
// not one.
func TestListElement(t *testing.T) {
	r := Raw{Ser: JSON, B: []byte(` [1, {"a": [18446744073709551616]} ,"x"]`)}
	if e, ok := ListElement(r, 1); !ok || string(e.B) != `{"a": [18446744073709551616]}` || e.Ser != JSON || e.Normalize {
		t.Fatalf("JSON element 1: %q %v %v", e.B, ok, e.Normalize)
	}
	if _, ok := ListElement(r, 3); ok {
		t.Fatal("JSON element 3 of 3 found")
	}
	m := Raw{Ser: MsgPack, B: mustHex(t, stripSpaces("93 01 92 d40000 02 a178"))}
	for i, want := range []struct {
		hex  string
		norm bool
	}{{"01", false}, {"92d4000002", true}, {"a178", false}} {
		e, ok := ListElement(m, i)
		if !ok || showHex(e.B) != want.hex || e.Normalize != want.norm {
			t.Fatalf("MsgPack element %d: %x %v Normalize %v, want %s %v", i, e.B, ok, e.Normalize, want.hex, want.norm)
		}
	}
	if _, ok := ListElement(Raw{Ser: CBOR, B: mustHex(t, "a1616101")}, 0); ok {
		t.Fatal("an element of a dictionary found")
	}
}

// A tag the router strips (any but the bignums, dates and the tags cbor2
// checks) on CBOR's undefined leaves undefined, and it follows the same
// rule as the untagged one: a dictionary member is left out (for JSON and
// MsgPack peers, and in DecodeValue: the Go client's), where it became a
// member holding null. CBOR peers get the member with undefined, the tag
// stripped, as they get an untagged one. A checked tag on it (tag 0 must
// hold a text) is not taken for undefined.
func TestTaggedUndefinedMemberIsAbsent(t *testing.T) {
	// {"a": 100(undefined), "b": 2, "c": 1000(60000(undefined))}
	in := Raw{Ser: CBOR, B: mustHex(t, stripSpaces("a3 6161 d864 f7 6162 02 6163 d903e8 d9ea60 f7"))}
	v, err := DecodeValue(in)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := v.(map[string]any); !ok || len(d) != 1 || d["b"] != int64(2) {
		t.Errorf("DecodeValue: %#v, want map[b:2]", v)
	}
	for _, to := range []Serializer{JSON, MsgPack} {
		out, err := Transcode(nil, to, in)
		if err != nil {
			t.Fatalf("to %s: %v", to, err)
		}
		back, err := DecodeValue(Raw{Ser: to, B: out})
		if d, ok := back.(map[string]any); err != nil || !ok || len(d) != 1 || d["b"] != int64(2) {
			t.Errorf("to %s: %s (%v), want {b: 2}", to, show(to, out), err)
		}
	}
	out, err := Transcode(nil, CBOR, in)
	if want := mustHex(t, stripSpaces("a3 6161 f7 6162 02 6163 f7")); err != nil || showHex(out) != showHex(want) {
		t.Errorf("to CBOR: %x %v, want %x (the members with undefined, untagged)", out, err, want)
	}
	if ValidArgs(Raw{Ser: CBOR, B: mustHex(t, "81a16161c0f7")}, false) {
		t.Error("tag 0 on undefined passed as a valid payload")
	}
}
