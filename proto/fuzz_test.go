package proto

import (
	"bytes"
	"testing"
)

// One fuzz target per decoder. Properties, for any input:
//   - Decode never panics, and fails only with a *Error;
//   - a decoded message re-encodes in the same serializer, decodes again to
//     an equal message with byte-identical raw parts, and re-encodes to the
//     same bytes;
//   - transcoded into each other serializer it either fails with a *Error
//     (a value with no form there: NaN to JSON, ...) or decodes to the same
//     message (MsgPack carries integers beyond 64 bits as floats; a date is
//     a MsgPack timestamp, a CBOR tag 1 number or JSON RFC 3339 text);
//   - DecodeValue of every raw part never panics.
//
// Run one with: go test -run '^$' -fuzz '^FuzzDecodeJSON$' -fuzztime 30s ./proto

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		// The test suite's CALL, as autobahn-python writes it.
		`[48,7814135,{},"com.myapp.myprocedure1",["Hello, world!"]]`,
		// PUBLISH with args, kwargs and acknowledge.
		`[16,444555666,{"acknowledge":true},"com.myapp.important",[100,"critical"],{"priority":"high","count":5}]`,
		// EVENT with a transparent (E2EE) payload and forward_for.
		`[36,1357924680,987654321098,{"forward_for":[{"session":3692581470,"authid":"router2","authrole":"router"}],"enc_algo":"cryptobox","enc_serializer":"cbor"},"\u0000omZzdGF0dXNpZm9yd2FyZGVkZGhvcHMC"]`,
		// HELLO with roles, as Autobahn|JS sends it (spaces).
		`[1, "com.example.realm", {"roles": {"subscriber": {}, "publisher": {}}, "authmethods": ["ticket"]}]`,
		// WELCOME, ERROR, REGISTER with pattern options, INVOCATION.
		`[2,9129137332,{"roles":{"broker":{},"dealer":{}},"authid":"alice"}]`,
		`[8,48,7814135,{},"com.myapp.error",["x"],{"k":1.5}]`,
		`[64,25349185,{"match":"wildcard","invoke":"roundrobin"},"com..update"]`,
		`[68,6131533,9823526,{"caller":1,"procedure":"com.x","receive_progress":true,"timeout":1000.0},[1,2]]`,
		// Escapes, surrogates, big and float numbers.
		`[50,1,{"x_\u00e9":"\ud83d\ude00\ud800"},["\"\\\/\b\f\n\r\t",-0,1e400,123456789012345678901234567890,1.0,-18446744073709551617]]`,
		// Revocation, EVENT_RECEIVED.
		`[67,0,{"reason":"wamp.registration.revoked"}]`,
		`[337,5512315355]`,
	} {
		f.Add([]byte(s))
	}
	addBuilt(f, JSON)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode(t, JSON, b) })
}

func FuzzDecodeMsgPack(f *testing.F) {
	for _, s := range []string{
		// The test suite's CALL.
		"9530ce00773bf780b6636f6d2e6d796170702e6d7970726f6365647572653191ad48656c6c6f2c20776f726c6421",
		// PUBLISH with args, kwargs and acknowledge.
		"9610ce1a7f619281ab61636b6e6f776c65646765c3b3636f6d2e6d796170702e696d706f7274616e749264a8637269746963616c82a87072696f72697479a468696768a5636f756e7405",
		// HELLO with roles; WELCOME with a uint64 session.
		"9301b1636f6d2e6578616d706c652e7265616c6d81a5726f6c657382aa7375627363726962657280a97075626c697368657280",
		"9302cf00000002202394b481a5726f6c657382a662726f6b657280a66465616c657280",
		// EVENT_RECEIVED; CALL with wide heads (array16, str16, map16).
		"92cd0151cf00000001488f41db",
		"dc00043001de0000da000170",
		// RESULT with float32, bin, ext (refused) and nil.
		"9432018092ca3fc00000c40101",
		"9432018091d40100",
		// wampy's SUBSCRIBE and CALL with JavaScript undefined (fixext 1
		// type 0) in options, args and kwargs (undefined_test.go).
		"942001de0002a56d61746368d40000ac6765745f72657461696e6564d40000a5636f6d2e74",
		"963002de0000a5636f6d2e7092d4000001de0002a161d40000a16202",
		// wampy's PUBLISH of two Dates (msgpackr: timestamp 64 and 32,
		// timestamp_test.go); the extremes of timestamp 64 and 96, a
		// Date beyond RFC 3339's years, and a timestamp in Details.
		"961001de0000a5636f6d2e7491d7ff1d5353006b11ca00de0001a26174d6ff6b11ca00",
		"95300180a17091d7ffee6b27ffffffffff",
		"95300180a17093c70cff3b9ac9ff7fffffffffffffffc70cff000000008000000000000000c70cff000000000000003afff44180",
		"953001 81a2785fc70cff1dcd6500ffffffffffffffff a170 90",
		// Timestamps refused: nanoseconds of a second, a wrong length.
		"95300180a17091d7ffee6b280000000000",
		"95300180a17091c708ff0000000000000001",
	} {
		f.Add(mustHex(f, stripSpaces(s)))
	}
	addBuilt(f, MsgPack)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode(t, MsgPack, b) })
}

func FuzzDecodeCBOR(f *testing.F) {
	for _, s := range []string{
		// The test suite's CALL.
		"8518301a00773bf7a076636f6d2e6d796170702e6d7970726f63656475726531816d48656c6c6f2c20776f726c6421",
		// PUBLISH with args, kwargs and acknowledge.
		"86101a1a7f6192a16b61636b6e6f776c65646765f573636f6d2e6d796170702e696d706f7274616e7482186468637269746963616ca2687072696f72697479646869676865636f756e7405",
		// HELLO with roles.
		"830171636f6d2e6578616d706c652e7265616c6da165726f6c6573a26a73756273637269626572a0697075626c6973686572a0",
		// Indefinite lengths, chunked strings, self-describe tag, bignum,
		// half float.
		"9f1830 01 bf6774696d656f757405ff 6170 9f01ff bf6161f5ff ff",
		"d9d9f7841830 01 a0 7f616161626163ff",
		"861830 01 a0 6170 82f93c00c249010000000000000000 a0",
		// wampy's SUBSCRIBE and CALL with undefined (simple value 23).
		"84182001b90002656d61746368f76c6765745f72657461696e6564f765636f6d2e74",
		"86183002b9000065636f6d2e7082f701b900026161f7616202",
		// wampy's PUBLISH of two Dates (cbor-x: tag 1 on a float and a
		// uint32); tag 1 on every number form, out of a timestamp's range,
		// NaN, and in Options.
		"861001b9000065636f6d2e7481c1fb41dac4728007df3bb90001626174c11a6b11ca00",
		"851830 01 a0 6170 88c120c13b7fffffffffffffffc1f93e00c1fa3fc00000c1fb3feffffffffffffdc11b8000000000000000c1fb7ff8000000000000c1fb43e0000000000000",
		"851830 01 a1 6774696d656f7574 c11903e8 6170 81c1fbbfe0000000000000",
	} {
		f.Add(mustHex(f, stripSpaces(s)))
	}
	addBuilt(f, CBOR)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzDecode(t, CBOR, b) })
}

// addBuilt seeds f with every built message type encoded in ser.
func addBuilt(f *testing.F, ser Serializer) {
	for _, bm := range allMessages(f) {
		f.Add(mustAppend(f, ser, bm.m))
	}
}

func fuzzDecode(t *testing.T, ser Serializer, b []byte) {
	var d Decoder
	var m Message
	if err := d.Decode(ser, b, &m); err != nil {
		requireTypedError(t, err, nil, "Decode")
		return
	}
	// Decode checks the raw parts' structure but not every string in them;
	// DecodeValue checks everything.
	valuesOK := true
	for _, r := range []Raw{m.Dict, m.Args, m.Kwargs} {
		if _, err := DecodeValue(r); err != nil {
			requireTypedError(t, err, nil, "DecodeValue")
			valuesOK = false
		}
	}
	_ = m.Opt.IDs(KeyEligible, m.Opt.IDs(KeyExclude, nil))
	_ = m.Opt.Strings(KeyAuthMethods, m.Opt.Strings(KeyExcludeAuthID, nil))

	// Same serializer: raw parts pass through untouched, but for a
	// payload marked to be normalized (a MsgPack undefined), which is
	// transcoded, once: what comes out is not marked again.
	out, err := Append(nil, ser, &m)
	if err != nil && !valuesOK && (m.Args.Normalize || m.Kwargs.Normalize) {
		requireTypedError(t, err, nil, "re-encode in "+ser.String())
		return
	}
	requireNoError(t, err, "re-encode in "+ser.String())
	var m2 Message
	var d2 Decoder
	if err := d2.Decode(ser, out, &m2); err != nil {
		t.Fatalf("re-encoded %s does not decode: %v\n in: %s\nout: %s", ser, err, show(ser, b), show(ser, out))
	}
	if headOf(&m) != headOf(&m2) || !bytes.Equal(m.URI, m2.URI) {
		t.Fatalf("head changed: %+v %q -> %+v %q", headOf(&m), m.URI, headOf(&m2), m2.URI)
	}
	for _, p := range [][2]Raw{{m.Dict, m2.Dict}, {m.Args, m2.Args}, {m.Kwargs, m2.Kwargs}} {
		want := p[0].B
		if p[0].Normalize {
			if want, err = Transcode(nil, ser, Raw{Ser: ser, B: p[0].B}); err != nil {
				t.Fatalf("normalized %s, but Transcode fails: %v", show(ser, p[0].B), err)
			}
			if p[1].Normalize {
				t.Fatalf("normalized part still marked: %s -> %s", show(ser, p[0].B), show(ser, p[1].B))
			}
		}
		if !bytes.Equal(want, p[1].B) || p[0].Present() != p[1].Present() {
			t.Fatalf("raw part changed: %s -> %s", show(ser, p[0].B), show(ser, p[1].B))
		}
	}
	if valuesOK {
		requireSameMessage(t, &m, &m2, eqOpts{}, "same-serializer round trip")
	}
	if again := mustAppend(t, ser, &m2); !bytes.Equal(again, out) {
		t.Fatalf("encoding is not stable:\n%s\n%s", show(ser, out), show(ser, again))
	}

	// Other serializers: a value DecodeValue refuses cannot be transcoded;
	// otherwise only JSON may lack a form (NaN, infinity, NUL-led text).
	for _, o := range serializers {
		if o == ser {
			continue
		}
		ob, err := Append(nil, o, &m)
		switch {
		case !valuesOK:
			if err == nil {
				t.Fatalf("transcoded to %s a value DecodeValue refuses: %s", o, show(ser, b))
			}
			requireTypedError(t, err, nil, "transcode to "+o.String())
			continue
		case err != nil && o == JSON:
			requireTypedError(t, err, ErrNotJSONable, "transcode to JSON")
			continue
		case err != nil:
			t.Fatalf("transcode %s to %s: %v\n in: %s", ser, o, err, show(ser, b))
		}
		mo, err := Decode(o, ob)
		if err != nil {
			t.Fatalf("transcoded to %s, does not decode: %v\n in: %s\nout: %s", o, err, show(ser, b), show(o, ob))
		}
		requireSameMessage(t, &m, mo, eqOpts{intAsFloat: o == MsgPack, dates: true}, ser.String()+"->"+o.String())
	}
}
