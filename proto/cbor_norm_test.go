package proto

import "testing"

// A CBOR payload holding a tag the router does not understand is marked and
// reaches CBOR peers with the tag stripped, as JSON and MsgPack peers get
// it; the tags it understands (bignum, epoch date within the years 1 to
// 9999, date text) pass as they came. (A tag whose content is not of the
// form its registration gives, tag 1 beyond the years 1 to 9999 or on a
// string, tag 0 on an integer, tags 25 and 29, is refused instead:
// TestCBORTagContent.)
func TestCBORTagsNormalized(t *testing.T) {
	cases := []struct {
		name, args, want string // want: the Arguments CBOR peers get; "" as they came
	}{
		{"tag 2^31", "81 da80000000 00", "8100"},
		{"tag 2^32", "81 db0000000100000000 00", "8100"},
		{"tag 225", "81 d8e1 00", "8100"},
		{"tag 28704", "81 d97020 00", "8100"},
		{"tag 51", "81 d833 00", "8100"},
		{"tag 27 on null", "81 d81b f6", "81f6"},
		{"tag 258 on an integer", "81 d90102 00", "8100"},
		{"tag 4 (decimal fraction)", "81 c4 82 21 196ab3", "81 82 21 196ab3"},
		{"tag 32 (URI)", "81 d820 6161", "81 6161"},
		{"unknown tag on a list, deep", "81 a1 6161 d9ffff 82 01 02", "81 a1 6161 82 01 02"},
		{"two tags", "81 d9d9f7 c1 1a5f5e1000", "81 c1 1a5f5e1000"},
		// A date text (tag 0) as a dictionary key: cbor2 reads it as a
		// datetime key, which Autobahn|Python cannot take as a keyword
		// argument. Stripped, as for the other peers; a date text value
		// beside it stays one.
		{"tag 0 on a key", "81 a1 c0 74323032302d30392d31335431323a32363a34305a 01", "81 a1 74323032302d30392d31335431323a32363a34305a 01"},
		{"tag 0 on a key, deep, beside a tag 0 value", "81 82 01 a1 c0 74323032302d30392d31335431323a32363a34305a c0 74323032302d30392d31335431323a32363a34305a",
			"81 82 01 a1 74323032302d30392d31335431323a32363a34305a c0 74323032302d30392d31335431323a32363a34305a"},
		{"tag 55799 on a key", "81 a1 d9d9f7 6161 01", "81 a1 6161 01"},
		// Indefinite-length strings, which cbor-x (wampy) cannot decode:
		// joined into definite ones (a small bignum's magnitude too, the
		// bignum then the integer it is; a date text keeps its tag).
		{"indefinite text", "81 7f 6161 6162 ff", "81 62 6162"},
		{"indefinite bytes", "81 5f 4101 4102 ff", "81 42 0102"},
		{"indefinite empty text", "81 7f ff", "81 60"},
		{"indefinite text key", "81 a1 7f 6161 ff 01", "81 a1 6161 01"},
		{"bignum of indefinite bytes", "81 c2 5f 410a ff", "81 0a"},
		{"date text of indefinite text", "81 c0 7f 6a323032302d30392d3133 6a5431323a32363a34305a ff", "81 c0 74323032302d30392d31335431323a32363a34305a"},
		{"tag 1 on a bignum", "81 c1 c2 41 01", "81 01"},
		// An empty magnitude, which node-cbor (Autobahn|JS) cannot
		// convert: the integer it is, 0 or -1.
		{"bignum of no bytes", "81 c2 40", "81 00"},
		{"negative bignum of no bytes", "81 c3 40", "81 20"},
		// Kept.
		{"tag 1 on an integer", "81 c1 1a5f5e1000", ""},
		{"tag 1 on a negative integer", "81 c1 3b0000000e7791f6ff", ""},
		{"tag 1 on a float", "81 c1 fb41d7d78400000000", ""},
		{"tag 1 on a half float", "81 c1 f93c00", ""},
		{"tag 0 on a text", "81 c0 74323032302d30392d31335431323a32363a34305a", ""},
		{"bignum", "81 c2 49 010000000000000000", ""},
		{"negative bignum", "81 c3 42 0102", ""},
		{"tag 55799 (node-cbor: a Tagged object)", "81 d9d9f7 01", "81 01"},
		{"no tag", "83 01 f7 a1 6161 f6", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := mustHex(t, stripSpaces(c.args))
			w := wr{ser: CBOR}
			w.arr(5)
			w.uint(uint64(CodePublish))
			w.uint(1)
			w.mapH(0)
			_ = w.strS("t")
			w.b = append(w.b, args...)
			m := mustDecode(t, CBOR, w.b)
			if m.Args.Normalize != (c.want != "") {
				t.Fatalf("Args.Normalize %v", m.Args.Normalize)
			}
			want := args
			if c.want != "" {
				want = mustHex(t, stripSpaces(c.want))
			}
			out := mustAppend(t, CBOR, &Message{Type: CodeEvent, ID: 1, ID2: 2, Args: m.Args})
			got := mustDecode(t, CBOR, out)
			if showHex(got.Args.B) != showHex(want) || got.Args.Normalize {
				t.Fatalf("CBOR peers get %x (Normalize %v), want %x", got.Args.B, got.Args.Normalize, want)
			}
		})
	}
}

// What CBOR peers get as it came (a date text, tag 0; CBOR's undefined,
// in a list and as a dictionary member) they get so also in a payload
// normalized for something else (a tag the router strips), as the README
// says: before, normalizing took the tag 0 off (a datetime became a str
// for cbor2) and turned undefined into null, or left the member out. The
// other peers still get the text alone, null and no member.
func TestCBORNormalizedKeepsDateTextAndUndefined(t *testing.T) {
	// [tag 0 "2020-09-13T12:26:40Z", undefined, {a: undefined, b: 1}, 55799(1)]
	date := "c0 74323032302d30392d31335431323a32363a34305a"
	args := mustHex(t, stripSpaces("84 "+date+" f7 a2 6161 f7 6162 01 d9d9f7 01"))
	w := wr{ser: CBOR}
	w.arr(5)
	w.uint(uint64(CodePublish))
	w.uint(1)
	w.mapH(0)
	_ = w.strS("t")
	w.b = append(w.b, args...)
	m := mustDecode(t, CBOR, w.b)
	if !m.Args.Normalize {
		t.Fatal("a payload holding tag 55799 not marked Normalize")
	}
	for _, c := range []struct {
		to   Serializer
		want string
	}{
		{CBOR, "84 " + date + " f7 a2 6161 f7 6162 01 01"},
		{MsgPack, "94 b4323032302d30392d31335431323a32363a34305a c0 81 a162 01 01"},
		{JSON, hexOf(`["2020-09-13T12:26:40Z",null,{"b":1},1]`)},
	} {
		out := mustAppend(t, c.to, &Message{Type: CodeEvent, ID: 1, ID2: 2, Args: m.Args})
		got := mustDecode(t, c.to, out)
		if want := stripSpaces(c.want); showHex(got.Args.B) != showHex(mustHex(t, want)) {
			t.Errorf("%s peers get %s, want %s", c.to, show(c.to, got.Args.B), show(c.to, mustHex(t, want)))
		}
	}
	// Transcode (CBOR to CBOR) keeps them too.
	out, err := Transcode(nil, CBOR, Raw{Ser: CBOR, B: args})
	requireNoError(t, err, "Transcode")
	if want := mustHex(t, stripSpaces("84 "+date+" f7 a2 6161 f7 6162 01 01")); showHex(out) != showHex(want) {
		t.Errorf("Transcode CBOR to CBOR: %x, want %x", out, want)
	}
}
