package route

import (
	"bytes"
	"math/big"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A MsgPack publisher's payload with invalid UTF-8 in a string, or a map
// key that is not a string, went to the MsgPack subscribers as it was; the
// Python ones (msgpack-python with autobahn) could not decode it and lost
// their connection. One publisher could so disconnect every such
// subscriber of a topic. The PUBLISH is now refused like any malformed
// message, and the subscribers see nothing of it.
func TestBinaryPayloadOtherPeersCannotDecodeRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		ser  proto.Serializer
		args []byte
	}{
		{"invalid UTF-8", proto.MsgPack, []byte{0x91, 0xa2, 0xff, 0xfe}},
		{"integer key", proto.MsgPack, []byte{0x91, 0x81, 0x01, 0x02}},
		{"invalid UTF-8, CBOR", proto.CBOR, []byte{0x81, 0x62, 0xff, 0xfe}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			sub := e.join(tc.ser)
			sub.subscribe("com.t", nil)
			pub := e.join(tc.ser)
			req := pub.nextReq()
			pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
				Args: proto.Raw{Ser: tc.ser, B: tc.args}})
			if m := pub.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
				t.Fatalf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
			}
			sub.quiet()
			other := e.join(tc.ser)
			other.publish("com.t", nil, []any{"fine"}, nil)
			if ev := sub.expect(proto.CodeEvent); argsOf(ev)[0] != "fine" {
				t.Fatalf("the next event: %v", argsOf(ev))
			}
		})
	}
}

// A JSON binary string ("\u0000" + base64) whose base64 is not standard
// and padded was not checked when the payload was scanned: JSON
// subscribers got it as it came, and Autobahn|Python's JSON serializer,
// which decodes every such string with base64.b64decode, raised
// binascii.Error and dropped its connection (one publisher could so
// disconnect every such subscriber of a topic); MsgPack and CBOR
// subscribers got it converted (unpadded base64) or not at all (bad
// characters: dropped as not_convertible), while the publisher got
// PUBLISHED. The PUBLISH is now refused like any malformed payload (ABORT
// wamp.error.protocol_violation, as for invalid UTF-8), and no subscriber
// sees it; padded base64 still passes to JSON peers as it is and is
// converted for the others.
func TestJSONMalformedBinaryRefused(t *testing.T) {
	for _, tc := range []struct{ name, bad string }{
		{"unpadded", `"\u0000AQI"`},
		{"impossible length", `"\u0000A"`},
		{"bad characters", `"\u0000!!"`},
		{"unpadded in a dict", `{"k":"\u0000AQ"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			jsub, msub := e.join(proto.JSON), e.join(proto.MsgPack)
			jsub.subscribe("com.bin", nil)
			msub.subscribe("com.bin", nil)
			pub := e.join(proto.JSON)
			pub.sendBytes([]byte(`[16,1,{"acknowledge":true},"com.bin",[` + tc.bad + `]]`))
			if m := pub.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
				t.Fatalf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
			}
			e.sync()
			jsub.quiet()
			msub.quiet()
			other := e.join(proto.JSON)
			other.sendBytes([]byte(`[16,2,{},"com.bin",["\u0000AQI="]]`))
			if ev := jsub.expect(proto.CodeEvent); string(ev.Args.B) != `["\u0000AQI="]` {
				t.Fatalf("JSON subscriber: the next event's Arguments %s, want them as published", ev.Args.B)
			}
			if ev := msub.expect(proto.CodeEvent); len(argsOf(ev)) != 1 || string(argsOf(ev)[0].([]byte)) != "\x01\x02" {
				t.Fatalf("MsgPack subscriber: the next event's Arguments %v", argsOf(ev))
			}
		})
	}
}

// A CBOR publisher's payload holding a tag that cbor2 (Autobahn|Python's
// CBOR serializer) decodes, on an item not of the form the tag's
// registration gives: tag 1 (epoch date) on a text string, on NaN or on an
// integer beyond datetime's years; tag 0 (date text) on an integer; tag 37
// (UUID) on a byte string that is not 16 bytes; tag 29 (shared value
// reference) with no shared value. The router read every tag but 2 and 3
// through and passed CBOR payloads to CBOR subscribers byte for byte, so
// cbor2 raised and Autobahn|Python dropped its connection: one publisher
// could disconnect every such subscriber of a topic (found by review). The
// PUBLISH is now refused like any malformed payload (ABORT
// wamp.error.protocol_violation, as for invalid UTF-8); a well-formed date
// still passes as it came, and other well-formed tags are stripped.
func TestCBORTagOtherPeersCannotDecodeRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []byte
	}{
		{"tag 1 on text", []byte{0x81, 0xc1, 0x61, 'x'}},
		{"tag 1 beyond year 9999", []byte{0x81, 0xc1, 0x1b, 0x40, 0, 0, 0, 0, 0, 0, 0}},
		{"tag 1 on NaN", []byte{0x81, 0xc1, 0xf9, 0x7e, 0x00}},
		{"tag 0 on an integer", []byte{0x81, 0xc0, 0x01}},
		{"tag 37 on 1 byte", []byte{0x81, 0xd8, 0x25, 0x41, 0x00}},
		{"tag 29 in a dictionary", []byte{0x81, 0xa1, 0x61, 'k', 0xd8, 0x1d, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			sub := e.join(proto.CBOR)
			sub.subscribe("com.t", nil)
			pub := e.join(proto.CBOR)
			req := pub.nextReq()
			pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
				Args: proto.Raw{Ser: proto.CBOR, B: tc.args}})
			if m := pub.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
				t.Fatalf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
			}
			sub.quiet()
		})
	}
	e := newEnv(t, 1, nil)
	sub := e.join(proto.CBOR)
	sub.subscribe("com.t", nil)
	pub := e.join(proto.CBOR)
	good := []byte{0x83, 0xc1, 0x1a, 0x65, 0, 0, 0, 0xd8, 0x25, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xd8, 0x63, 0x61, 'x'}
	req := pub.nextReq()
	pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
		Args: proto.Raw{Ser: proto.CBOR, B: good}})
	pub.expect(proto.CodePublished)
	// The date passes as it came; tag 37 and the unknown tag 99 are
	// stripped, as for JSON and MsgPack peers (cbor_norm.go).
	want := []byte{0x83, 0xc1, 0x1a, 0x65, 0, 0, 0, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x61, 'x'}
	if ev := sub.expect(proto.CodeEvent); !bytes.Equal(ev.Args.B, want) {
		t.Fatalf("the CBOR subscriber got Arguments % x, want % x", ev.Args.B, want)
	}
}

// A JSON integer beyond 8192 bits (the bound of its conversion to another
// serializer) was passed to JSON subscribers as it came: the JSON scanner
// bounded no integer's length. Python's int() refuses more than 4,300
// digits (json.loads, CVE-2020-10735), so one publisher's 5,000-digit
// integer dropped every Autobahn|Python JSON subscriber of a topic, while
// the MsgPack subscribers got nothing (not_convertible) and the publisher
// PUBLISHED (found by review). The PUBLISH is now refused like any
// malformed payload (ABORT wamp.error.protocol_violation), for every peer
// alike; 2^8192 - 1 still passes, as it came to JSON peers and converted to
// CBOR ones.
func TestJSONHugeIntegerRefused(t *testing.T) {
	e := newEnv(t, 1, nil)
	jsub, csub := e.join(proto.JSON), e.join(proto.CBOR)
	jsub.subscribe("com.big", nil)
	csub.subscribe("com.big", nil)
	for _, digits := range []string{strings.Repeat("1", 5000), "-" + strings.Repeat("9", 2467)} {
		pub := e.join(proto.JSON)
		pub.sendBytes([]byte(`[16,1,{"acknowledge":true},"com.big",[` + digits + `]]`))
		if m := pub.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
			t.Fatalf("%d digits: publisher got %v %s, want ABORT %s", len(digits), m.Type, describe(m), proto.URIProtocolViolation)
		}
		e.sync()
		jsub.quiet()
		csub.quiet()
	}
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8192), big.NewInt(1)).String()
	pub := e.join(proto.JSON)
	pub.sendBytes([]byte(`[16,1,{"acknowledge":true},"com.big",[` + max + `]]`))
	pub.expect(proto.CodePublished)
	if ev := jsub.expect(proto.CodeEvent); string(ev.Args.B) != "["+max+"]" {
		t.Fatalf("the JSON subscriber got %.40s..., want 2^8192 - 1 as published", ev.Args.B)
	}
	if ev := csub.expect(proto.CodeEvent); len(ev.Args.B) != 1+1+3+1024 {
		t.Fatalf("the CBOR subscriber got %d bytes of Arguments, want a 1024-byte bignum", len(ev.Args.B))
	}
}

// A MsgPack or CBOR text string starting with NUL has no JSON form (a JSON
// string starting with NUL is binary). In a ppt_* option of a PUBLISH it
// was passed into the EVENT's Details, which could then not be encoded for
// a JSON subscriber: it lost the event, while the publisher got PUBLISHED
// and MsgPack subscribers the event (the review's suspicion, confirmed).
// Such a text is now refused in any string option (ABORT
// wamp.error.protocol_violation), a HELLO's agent too, though the router
// passes on only the ppt_* ones today.
func TestOptionStartingWithNULRefused(t *testing.T) {
	for _, key := range []string{"ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"} {
		t.Run(key, func(t *testing.T) {
			e := newEnv(t, 1, nil)
			jsub, msub := e.joinWith(proto.JSON, pptFeatures()), e.joinWith(proto.MsgPack, pptFeatures())
			jsub.subscribe("com.secret", nil)
			msub.subscribe("com.secret", nil)
			pub := e.joinWith(proto.MsgPack, pptFeatures())
			opts := map[string]any{"ppt_scheme": "x_custom", "acknowledge": true}
			opts[key] = "\x00x"
			pub.send(&proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(opts), URI: []byte("com.secret"),
				Args: raw(t, proto.MsgPack, []byte{9, 8, 7}), Transparent: true})
			if m := pub.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
				t.Errorf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
			}
			e.sync()
			jsub.quiet()
			msub.quiet()
		})
	}
	t.Run("agent", func(t *testing.T) {
		e := newEnv(t, 1, nil)
		meta := e.join(proto.JSON)
		meta.subscribe("wamp.session.on_join", nil)
		c := e.connect(proto.CBOR)
		c.hello("realm1", allFeatures, map[string]any{"agent": "\x00x"})
		if m := c.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
			t.Errorf("HELLO answered %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
		}
		e.sync()
		meta.quiet()
	})
}
