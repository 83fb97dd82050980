package proto

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestDecodeBadMessages feeds malformed messages in all three serializers
// (MsgPack and CBOR transcoded from the JSON text): each must be refused
// with an error that says what is wrong.
func TestDecodeBadMessages(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // substring of the error text
	}{
		{"not an array", `{"a":1}`, "must be an array"},
		{"scalar", `48`, "must be an array"},
		{"empty array", `[]`, "empty message array"},
		{"type as string", `["48",1,{},"p"]`, "message type must be an integer"},
		{"type negative", `[-48,1,{},"p"]`, "message type must be an integer"},
		{"type float", `[48.0,1,{},"p"]`, "message type must be an integer"},
		{"type too big", `[65584,1,{},"p"]`, "message type must be an integer"},
		{"type null", `[null]`, "message type must be an integer"},
		{"unknown type 0", `[0,1]`, "unknown message type"},
		{"unknown type 7 (HEARTBEAT)", `[7,1,2]`, "unknown message type"},
		{"unknown type 99", `[99,1,{},"p"]`, "unknown message type"},
		{"unknown type 336", `[336,1]`, "unknown message type"},
		{"id as string", `[48,"1",{},"p"]`, "CALL ids must be integers in [0, 2^53]"},
		{"id negative", `[48,-1,{},"p"]`, "CALL ids must be integers"},
		{"id not integral", `[48,1.5,{},"p"]`, "CALL ids must be integers"},
		{"id 2^53+1", `[48,9007199254740993,{},"p"]`, "CALL ids must be integers"},
		{"id beyond 64 bits", `[48,18446744073709551616,{},"p"]`, "CALL ids must be integers"},
		{"session id null", `[2,null,{}]`, "WELCOME ids must be integers"},
		{"publication as string", `[36,1,"2",{}]`, "EVENT ids must be integers"},
		{"options null", `[48,1,null,"p"]`, "CALL.Options must be a dictionary"},
		{"options list", `[48,1,[],"p"]`, "CALL.Options must be a dictionary"},
		{"details string", `[50,1,"x"]`, "RESULT.Details must be a dictionary"},
		{"procedure not a string", `[48,1,{},1]`, "CALL Procedure must be a URI string"},
		{"procedure binary", `[48,1,{},"\u0000AA=="]`, "CALL Procedure must be a URI string"},
		{"topic null", `[16,1,{},null]`, "PUBLISH Topic must be a URI string"},
		{"realm list", `[1,[],{}]`, "HELLO Realm must be a URI string"},
		{"reason int", `[6,{},6]`, "GOODBYE Reason must be a URI string"},
		{"error uri int", `[8,48,1,{},8]`, "ERROR Error must be a URI string"},
		{"authmethod int", `[4,1,{}]`, "CHALLENGE AuthMethod must be a string"},
		{"signature null", `[5,null,{}]`, "AUTHENTICATE Signature must be a string"},
		{"args dict", `[48,1,{},"p",{}]`, "CALL Arguments must be a list (or a binary payload)"},
		{"args string", `[16,1,{},"t","x"]`, "PUBLISH Arguments must be a list"},
		{"args null", `[50,1,{},null]`, "RESULT Arguments must be a list"},
		{"kwargs list", `[48,1,{},"p",[],[]]`, "CALL ArgumentsKw must be a dictionary"},
		{"kwargs null", `[70,1,{},[],null]`, "YIELD ArgumentsKw must be a dictionary"},
		{"nested kwargs (control)", `[48,1,{},"p",[],{"a":{"b":[{"c":1}]},"d":[]}]`, ""},
		{"transparent with kwargs", `[48,1,{},"p","\u0000AA==",{}]`, "CALL with a transparent payload cannot have ArgumentsKw"},
		{"error request type", `[8,1,1,{},"e"]`, "ERROR request type must be SUBSCRIBE"},
		{"error request type published", `[8,17,1,{},"e"]`, "ERROR request type must be SUBSCRIBE"},
		{"error request type string", `[8,"48",1,{},"e"]`, "ERROR request type must be an integer"},
		{"unsubscribed revocation with request", `[35,5,{}]`, "UNSUBSCRIBED with Details must have request id 0"},
		{"unregistered revocation with request", `[67,5,{"reason":"x"}]`, "UNREGISTERED with Details must have request id 0"},
		{"too few CALL", `[48,1,{}]`, "CALL has too few elements"},
		{"too few PUBLISHED", `[17,1]`, "PUBLISHED has too few elements"},
		{"too few GOODBYE", `[6,{}]`, "GOODBYE has too few elements"},
		{"too few EVENT_RECEIVED", `[337]`, "EVENT_RECEIVED has too few elements"},
		{"too few ERROR", `[8,48,1,{}]`, "ERROR has too few elements"},
		{"too few UNSUBSCRIBED", `[35]`, "UNSUBSCRIBED has too few elements"},
		{"too many CALL", `[48,1,{},"p",[],{},1]`, "CALL has too many elements"},
		{"too many HELLO", `[1,"r",{},{}]`, "HELLO has too many elements"},
		{"too many EVENT_RECEIVED", `[337,1,2]`, "EVENT_RECEIVED has too many elements"},
		{"too many UNREGISTERED", `[67,0,{},1]`, "UNREGISTERED has too many elements"},
		{"too many PUBLISHED", `[17,1,2,3]`, "PUBLISHED has too many elements"},
	}
	for _, tc := range tests {
		for _, ser := range serializers {
			t.Run(tc.name+"/"+ser.String(), func(t *testing.T) {
				b := []byte(tc.in)
				if ser != JSON {
					var err error
					if b, err = Transcode(nil, ser, Raw{Ser: JSON, B: b}); err != nil {
						t.Fatalf("transcode: %v", err)
					}
				}
				if tc.want == "" { // valid: a control case
					mustDecode(t, ser, b)
					return
				}
				var d Decoder
				var m Message
				err := d.Decode(ser, b, &m)
				requireErrorContains(t, err, tc.want, show(ser, b))
				var pe *Error
				if !errors.As(err, &pe) || pe.Msg() != strings.TrimPrefix(err.Error(), "proto: ") {
					t.Fatalf("error %v: not a *proto.Error with a consistent Msg", err)
				}
			})
		}
	}
}

// TestDecodeBadBytes covers malformed input that JSON text cannot express:
// bad encodings, trailing bytes, declared lengths beyond the input.
func TestDecodeBadBytes(t *testing.T) {
	tests := []struct {
		name string
		ser  Serializer
		in   string // JSON text or hex
		want error  // nil: any *Error
	}{
		{"json trailing garbage", JSON, `[49,1,{}] x`, ErrTrailing},
		{"json two messages", JSON, `[49,1,{}][49,1,{}]`, ErrTrailing},
		{"json empty", JSON, ``, ErrTruncated},
		{"json whitespace only", JSON, " \n\t", ErrTruncated},
		{"json unclosed", JSON, `[49,1,{}`, ErrTruncated},
		{"json bad separator", JSON, `[49;1,{}]`, ErrBadSyntax},
		{"json leading comma", JSON, `[,49,1,{}]`, ErrBadSyntax},
		{"json comment", JSON, `[49,1,{}/**/]`, ErrBadSyntax},
		{"json invalid UTF-8 uri", JSON, "[48,1,{},\"p\xff\"]", ErrBadUTF8},
		{"json NUL in text", JSON, "[48,1,{},\"p\x00\"]", ErrBadSyntax},
		{"msgpack trailing", MsgPack, "9331ce00773bf78000", ErrTrailing},
		{"msgpack map as message", MsgPack, "81a16101", ErrNotArray},
		{"msgpack empty", MsgPack, "", ErrTruncated},
		{"msgpack invalid UTF-8 uri", MsgPack, "943001 80 a2c328", ErrBadURIText}, // the rest decoded: the router answers invalid_uri
		{"msgpack invalid UTF-8 option", MsgPack, "943001 81a5746f706963a1ff a170", nil},
		// A string in a list option, as in a string option (accepted before).
		{"msgpack invalid UTF-8 in exclude_authid", MsgPack, "941001 81ae" + hexOf("exclude_authid") + "91a1ff a174", nil},
		{"cbor invalid UTF-8 in exclude_authid", CBOR, "841001 a16e" + hexOf("exclude_authid") + "8161ff 6174", nil},
		{"msgpack ext in args", MsgPack, "953001 80 a170 91d40100", nil},
		{"msgpack c1 in kwargs", MsgPack, "963001 80 a170 90 81a161c1", nil},
		{"msgpack array32 of 4G", MsgPack, "dd ffffffff 30", ErrLength},
		{"msgpack array16 beyond input", MsgPack, "dc 0010 3001", ErrLength},
		{"msgpack map32 options", MsgPack, "943001 df ffffffff a170", ErrLength},
		{"msgpack str32 uri", MsgPack, "943001 80 db ffffffff 70", ErrLength},
		{"msgpack str16 uri", MsgPack, "943001 80 da 0100 70", ErrLength},
		{"msgpack bin32 args", MsgPack, "953001 80 a170 c6 ffffffff", ErrLength},
		{"msgpack str32 key", MsgPack, "943001 81 db ffffffff a170", ErrLength},
		{"msgpack array32 in args", MsgPack, "953001 80 a170 dd ffffffff", ErrLength},
		{"msgpack map32 in kwargs", MsgPack, "963001 80 a170 90 df 7fffffff", ErrLength},
		{"msgpack ext32 in args", MsgPack, "953001 80 a170 91 c9 ffffffff 01", ErrLength},
		{"cbor trailing", CBOR, "8318311a00773bf7a0 00", ErrTrailing},
		{"cbor map as message", CBOR, "a1616101", ErrNotArray},
		{"cbor indefinite message, no break", CBOR, "9f1831 01 a0", ErrTruncated},
		{"cbor invalid UTF-8 uri", CBOR, "841830 01 a0 62c328", ErrBadURIText},
		{"cbor array of 2^64-1", CBOR, "9b ffffffffffffffff 1830", ErrLength},
		{"cbor map of 2^63 options", CBOR, "841830 01 bb 8000000000000000 6170", ErrLength},
		{"cbor text of 2^64-1 uri", CBOR, "841830 01 a0 7b ffffffffffffffff 70", ErrLength},
		{"cbor text of 4G uri", CBOR, "841830 01 a0 7a ffffffff 70", ErrLength},
		{"cbor bytes of 2^64-1 args", CBOR, "851830 01 a0 6170 5b ffffffffffffffff", ErrLength},
		{"cbor huge chunk", CBOR, "851830 01 a0 6170 5f 5b ffffffffffffffff ff", ErrLength},
		{"cbor huge bignum", CBOR, "851830 01 a0 6170 81 c2 5b ffffffffffffffff", ErrLength},
		{"cbor huge array in args", CBOR, "851830 01 a0 6170 9b ffffffffffffffff", ErrLength},
		{"cbor huge map in kwargs", CBOR, "861830 01 a0 6170 80 ba ffffffff", ErrLength},
		{"cbor head cut", CBOR, "841830 1b 0000", ErrTruncated},
		{"cbor reserved info", CBOR, "841830 1c a0 6170", nil},
		{"cbor indefinite id", CBOR, "841830 1f a0 6170", nil},
		{"cbor break as id", CBOR, "841830 ff a0 6170", nil},
		{"cbor many tags", CBOR, "851830 01 a0 6170 81" + strings.Repeat("c6", 20) + "01", nil},
		{"cbor bignum chain", CBOR, "851830 01 a0 6170 81" + strings.Repeat("c2", 5000) + "40", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			if tc.ser != JSON {
				b = mustHex(t, strings.ReplaceAll(tc.in, " ", ""))
			}
			_, err := Decode(tc.ser, b)
			requireTypedError(t, err, tc.want, show(tc.ser, b))
		})
	}
}

// TestHugeDeclaredLengths checks that a few bytes declaring a huge string,
// binary, array or map neither panic nor allocate by the declared length,
// in Decode, DecodeValue and Transcode.
func TestHugeDeclaredLengths(t *testing.T) {
	inputs := []struct {
		name string
		ser  Serializer
		hex  string
	}{
		{"msgpack str32 4G", MsgPack, "dbffffffff61"},
		{"msgpack bin32 4G", MsgPack, "c6ffffffff61"},
		{"msgpack array32 4G", MsgPack, "ddffffffff01"},
		{"msgpack map32 4G", MsgPack, "dfffffffffa16101"},
		{"msgpack ext32 4G", MsgPack, "c9ffffffff0161"},
		{"cbor text 2^64-1", CBOR, "7bffffffffffffffff61"},
		{"cbor bytes 4G", CBOR, "5affffffff61"},
		{"cbor array 2^63", CBOR, "9b800000000000000001"},
		{"cbor map 4G", CBOR, "baffffffff616101"},
		{"cbor chunk 2^64-1", CBOR, "5f5bffffffffffffffff61ff"},
		{"cbor bignum 2^64-1", CBOR, "c25bffffffffffffffff61"},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			v := mustHex(t, in.hex)
			msg := callWith(t, in.ser, "args", mustHex(t, "80")) // a CALL to put v in
			msg = append(msg[:len(msg)-1], v...)                 // replace its empty Args
			var d Decoder
			var m Message
			checks := map[string]func() error{
				"Decode":      func() error { return d.Decode(in.ser, msg, &m) },
				"DecodeValue": func() error { _, err := DecodeValue(Raw{Ser: in.ser, B: v}); return err },
			}
			for _, to := range serializers {
				checks["Transcode to "+to.String()] = func() error { _, err := Transcode(nil, to, Raw{Ser: in.ser, B: v}); return err }
			}
			for name, f := range checks {
				var err error
				n := bytesPerRun(10, func() { err = f() })
				requireTypedError(t, err, nil, name)
				if n >= 1024 {
					t.Errorf("%s: allocated %d bytes per run for a %d-byte input", name, n, len(v))
				}
			}
		})
	}
}

// bytesPerRun returns the bytes f allocates per call, averaged over runs.
func bytesPerRun(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestDecodeNeverPanicsOnTypes decodes every message type with each of its
// elements replaced by a value of each kind: each decode either succeeds or
// returns a *Error, and never panics.
func TestDecodeNeverPanicsOnTypes(t *testing.T) {
	kinds := []string{`null`, `true`, `0`, `-1`, `1.5`, `18446744073709551616`, `"s"`, `"\u0000AA=="`, `[]`, `[1]`, `{}`, `{"a":1}`}
	for _, bm := range allMessages(t) {
		base := mustAppend(t, JSON, bm.m)
		elems, err := DecodeValue(Raw{Ser: JSON, B: base})
		requireNoError(t, err, "DecodeValue")
		list := elems.([]any)
		for i := range list {
			for _, k := range kinds {
				repl := make([]any, len(list))
				copy(repl, list)
				repl[i] = mustValue(t, Raw{Ser: JSON, B: []byte(k)})
				jb := mustEncodeValue(t, JSON, repl).B
				for _, ser := range serializers {
					b := jb
					if ser != JSON {
						b = mustTranscode(t, ser, string(jb))
					}
					_, err := Decode(ser, b)
					var pe *Error
					if err != nil && !errors.As(err, &pe) {
						t.Fatalf("%s %s: %T %v", ser, jb, err, err)
					}
				}
			}
		}
	}
}

// TestDecodeWhitespace checks that JSON whitespace is allowed wherever RFC
// 8259 allows it, and nothing else is.
func TestDecodeWhitespace(t *testing.T) {
	ok := []string{
		" [48,1,{},\"p\"] ",
		"\t[ 48 ,\n1 ,\r{ } , \"p\" , [ ] , { \"a\" : 1 } ]\n",
		"[48,1,{ \"timeout\" : 5 , \"x\" : [ 1 , 2 ] },\"p\"]",
	}
	for _, in := range ok {
		mustDecode(t, JSON, []byte(in))
	}
	bad := []string{"\v[48,1,{},\"p\"]", "[48,1,{},\"p\"]\f", "[48,\u00a01,{},\"p\"]"}
	for _, in := range bad {
		if _, err := Decode(JSON, []byte(in)); err == nil {
			t.Errorf("%q: decoded", in)
		}
	}
	m := mustDecode(t, JSON, []byte("[48,1,{},\"p\", [ 1 ,2 ] , {\"a\" :1 } ]"))
	if got := fmt.Sprintf("%s|%s", m.Args.B, m.Kwargs.B); got != "[ 1 ,2 ]|{\"a\" :1 }" {
		t.Fatalf("raw spans: %s", got)
	}
}

// TestCBORTagContent: a CBOR tag that cbor2 (Autobahn|Python) decodes, on
// an item not of the form its registration gives, is refused wherever CBOR
// is read: the payload of a PUBLISH (Decode), ValidArgs (the mesh's check)
// and Transcode. Other tags, and well-formed checked ones, pass. Checked
// against cbor2 5.4.6 (Debian's, cbor2.loads): each passing case decodes
// there, each refused one raises but three that RFC 8949's registrations
// refuse and cbor2 takes (tag 4 with a float mantissa, tags 24 and 32,
// which it leaves as CBORTag, on an item of another major type).
func TestCBORTagContent(t *testing.T) {
	u := func(s string) []byte { return []byte(s) }
	text := func(s string) []byte { return append([]byte{0x60 | byte(len(s))}, s...) } // < 24 bytes
	text2 := func(s string) []byte { return append([]byte{0x78, byte(len(s))}, s...) }
	cat := func(p ...[]byte) []byte { return bytes.Join(p, nil) }
	for _, tc := range []struct {
		name string
		item []byte
		ok   bool
	}{
		{"tag 0 date", cat(u("\xc0"), text2("2020-02-29T23:59:59.123456789+05:30")), true},
		{"tag 0 Z", cat(u("\xc0"), text2("0001-01-01T00:00:00Z")), true},
		{"tag 0 chunked", cat(u("\xc0\x7f"), text("2020-01-01T"), text("00:00:00Z"), u("\xff")), true},
		{"tag 0 on an integer", u("\xc0\x01"), false},
		{"tag 0 not a date", cat(u("\xc0"), text("x")), false},
		{"tag 0 February 30", cat(u("\xc0"), text2("2021-02-29T00:00:00Z")), false},
		{"tag 0 year 0", cat(u("\xc0"), text2("0000-01-01T00:00:00Z")), false},
		{"tag 0 leap second", cat(u("\xc0"), text2("2016-12-31T23:59:60Z")), false},
		{"tag 0 offset 24:00", cat(u("\xc0"), text2("2020-01-01T00:00:00+24:00")), false},
		{"tag 0 lower case", cat(u("\xc0"), text2("2020-01-01t00:00:00z")), false},
		{"tag 0 empty fraction", cat(u("\xc0"), text2("2020-01-01T00:00:00.Z")), false},
		{"tag 1 integer", u("\xc1\x1a\x65\x00\x00\x00"), true},
		{"tag 1 year 1", u("\xc1\x3b\x00\x00\x00\x0e\x77\x91\xf6\xff"), true},              // -62135596800
		{"tag 1 year 0", u("\xc1\x3b\x00\x00\x00\x0e\x77\x91\xf7\x00"), false},             // -62135596801
		{"tag 1 last second of 9999", u("\xc1\x1b\x00\x00\x00\x3a\xff\xf4\x41\x7f"), true}, // 253402300799
		{"tag 1 year 10000", u("\xc1\x1b\x00\x00\x00\x3a\xff\xf4\x41\x80"), false},         // 253402300800
		{"tag 1 beyond year 9999", u("\xc1\x1b\x40\x00\x00\x00\x00\x00\x00\x00"), false},
		{"tag 1 float", u("\xc1\xfb\x41\xd9\x40\x00\x00\x00\x00\x00"), true},
		{"tag 1 NaN", u("\xc1\xf9\x7e\x00"), false},
		{"tag 1 infinity", u("\xc1\xf9\x7c\x00"), false},
		{"tag 1 on text", cat(u("\xc1"), text("x")), false},
		{"tag 1 on a bignum", u("\xc1\xc2\x41\x05"), true},
		{"tag 1 on a 9-byte bignum", u("\xc1\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00"), false},
		{"tag 1 through 55799", u("\xc1\xd9\xd9\xf7\x05"), true},
		{"tag 1 on an unknown tag", u("\xc1\xd8\x63\x05"), false},
		{"tag 4", u("\xc4\x82\x21\x19\x6a\xb3"), true}, // 273.15
		{"tag 4 bignum mantissa", u("\xc4\x82\x21\xc2\x49\x01\x00\x00\x00\x00\x00\x00\x00\x00"), true},
		{"tag 4 indefinite", u("\xc4\x9f\x01\x02\xff"), true},
		{"tag 4 three elements", u("\xc4\x83\x01\x02\x03"), false},
		{"tag 4 indefinite three", u("\xc4\x9f\x01\x02\x03\xff"), false},
		{"tag 4 float mantissa", u("\xc4\x82\x01\xf9\x3e\x00"), false},
		{"tag 4 exponent 2^63-1", u("\xc4\x82\x1b\x7f\xff\xff\xff\xff\xff\xff\xff\x01"), false},
		{"tag 4 on an integer", u("\xc4\x01"), false},
		{"tag 5", u("\xc5\x82\x20\x03"), true},
		{"tag 5 exponent 3,400,000", u("\xc5\x82\x1a\x00\x33\xe1\x40\x01"), false},
		{"tag 24", u("\xd8\x18\x41\x01"), true},
		{"tag 24 on text", cat(u("\xd8\x18"), text("x")), false},
		{"tag 25", u("\xd8\x19\x00"), false},
		{"tag 29", u("\xd8\x1d\x00"), false},
		{"tag 28 and 256", u("\xd8\x1c\xd9\x01\x00\x81\x01"), true},
		{"tag 30", u("\xd8\x1e\x82\x01\x22"), true},
		{"tag 30 denominator 0", u("\xd8\x1e\x82\x01\x00"), false},
		{"tag 30 bignum denominator 0", u("\xd8\x1e\x82\x01\xc2\x41\x00"), false},
		{"tag 30 one element", u("\xd8\x1e\x81\x01"), false},
		{"tag 32", cat(u("\xd8\x20"), text("http://x")), true},
		{"tag 32 on an integer", u("\xd8\x20\x01"), false},
		{"tag 35 on an integer", u("\xd8\x23\x01"), false},
		{"tag 36 on bytes", u("\xd8\x24\x41\x01"), false},
		{"tag 37", cat(u("\xd8\x25\x50"), bytes.Repeat(u("\x01"), 16)), true},
		{"tag 37 chunked", cat(u("\xd8\x25\x5f\x48"), bytes.Repeat(u("\x01"), 8), u("\x48"), bytes.Repeat(u("\x01"), 8), u("\xff")), true},
		{"tag 37 on 1 byte", u("\xd8\x25\x41\x00"), false},
		{"tag 37 on text", cat(u("\xd8\x25\x70"), bytes.Repeat(u("a"), 16)), false},
		{"tag 99 on anything", cat(u("\xd8\x63"), text("x")), true},
		{"tag 55799", u("\xd9\xd9\xf7\x01"), true},
		{"tag 4 in a map", u("\xa1\x61k\xc4\x01"), false},
		{"tag 37 on a list", u("\xd8\x25\x80"), false},
	} {
		args := append([]byte{0x81}, tc.item...)
		m := &Message{Type: CodePublish, Request: 1, URI: []byte("com.t"), Args: Raw{Ser: CBOR, B: args}}
		b, err := Append(nil, CBOR, m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, derr := Decode(CBOR, b)
		valid := ValidArgs(Raw{Ser: CBOR, B: args}, false)
		_, terr := Transcode(nil, MsgPack, Raw{Ser: CBOR, B: args})
		if (derr == nil) != tc.ok || valid != tc.ok || (terr == nil) != tc.ok {
			t.Errorf("%s (% x): Decode err %v, ValidArgs %v, Transcode err %v; want accepted: %v", tc.name, tc.item, derr, valid, terr, tc.ok)
		}
	}
}
