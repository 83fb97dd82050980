package loop

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A CBOR payload the router normalizes for a tag it strips (here tag 55799,
// self-described CBOR) still reaches CBOR subscribers with what passes to
// them as it came: a date text (tag 0) and CBOR's undefined, in a list and
// as a dictionary member (README, Quick start). Before, normalizing took
// tag 0 off and made undefined null, or left the member out. A JSON
// subscriber gets the text, null and no member.
func TestSocketCBORNormalizedKeepsDateTextAndUndefined(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	subC, subJ, pub := s.joinRS(t, proto.CBOR), s.joinRS(t, proto.JSON), s.joinRS(t, proto.CBOR)
	subC.subscribe("com.dates")
	subJ.subscribe("com.dates")

	date := "c0 74323032302d30392d31335431323a32363a34305a" // tag 0 "2020-09-13T12:26:40Z"
	// [PUBLISH, 1, {}, "com.dates", [date, undefined, {a: undefined, b: 1}, 55799(1)]]
	msg := mustHexT(t, "85 10 01 a0 69"+hex.EncodeToString([]byte("com.dates"))+"84"+date+"f7 a2 6161 f7 6162 01 d9d9f7 01")
	pub.c.send(msg)

	if m := subC.expect(proto.CodeEvent); !bytes.Equal(m.Args.B, mustHexT(t, "84"+date+"f7 a2 6161 f7 6162 01 01")) {
		t.Errorf("the CBOR subscriber got Arguments %x, want %s", m.Args.B, strings.ReplaceAll("84"+date+"f7 a2 6161 f7 6162 01 01", " ", ""))
	}
	if m := subJ.expect(proto.CodeEvent); string(m.Args.B) != `["2020-09-13T12:26:40Z",null,{"b":1},1]` {
		t.Errorf("the JSON subscriber got Arguments %s", m.Args.B)
	}
}

// A date text (tag 0) as a key of a CBOR publication's ArgumentsKw reaches
// CBOR subscribers as the text alone, as it reaches the others. Before, it
// passed as it came: cbor2 (Autobahn|Python) reads the key as a datetime,
// and calling the handler with a datetime keyword raised TypeError out of
// Autobahn|Python's message handler, which dropped its connection: one
// publication disconnected every such subscriber of the topic.
func TestSocketCBORTaggedKeyStripped(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	subC, subM, pub := s.joinRS(t, proto.CBOR), s.joinRS(t, proto.MsgPack), s.joinRS(t, proto.CBOR)
	subC.subscribe("com.keys")
	subM.subscribe("com.keys")

	text := "323032302d30392d31335431323a32363a34305a" // "2020-09-13T12:26:40Z"
	// [PUBLISH, 1, {}, "com.keys", [], {0(text): 1}]
	pub.c.send(mustHexT(t, "86 10 01 a0 68"+hex.EncodeToString([]byte("com.keys"))+"80 a1 c0 74"+text+"01"))

	if m := subC.expect(proto.CodeEvent); hex.EncodeToString(m.Kwargs.B) != "a174"+text+"01" {
		t.Errorf("the CBOR subscriber got ArgumentsKw %x, want a174%s01 (the key untagged)", m.Kwargs.B, text)
	}
	if m := subM.expect(proto.CodeEvent); hex.EncodeToString(m.Kwargs.B) != "81b4"+text+"01" {
		t.Errorf("the MsgPack subscriber got ArgumentsKw %x", m.Kwargs.B)
	}
}

func mustHexT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Indefinite-length text and byte strings in a CBOR publication (valid
// CBOR: node-cbor and cbor2 read them) reach CBOR subscribers joined into
// definite strings, in Arguments and as ArgumentsKw keys and values.
// Before, they passed as they came, and cbor-x 1.6.9 (wampy 8.0.2's CBOR)
// cannot decode them at all ("Indefinite length not supported for byte or
// text strings"): wampy closes its session on a message it cannot decode,
// so one publication ended every wampy CBOR subscriber of the topic.
func TestSocketCBORIndefiniteStringsJoined(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	sub, pub := s.joinRS(t, proto.CBOR), s.joinRS(t, proto.CBOR)
	sub.subscribe("com.chunks")

	// [PUBLISH, 1, {}, "com.chunks", [(_ "a", "b"), (_ h'01', h'02')], {(_ "k"): (_ "v")}]
	pub.c.send(mustHexT(t, "86 10 01 a0 6a"+hex.EncodeToString([]byte("com.chunks"))+
		"82 7f 6161 6162 ff 5f 4101 4102 ff a1 7f 616b ff 7f 6176 ff"))
	m := sub.expect(proto.CodeEvent)
	if got := hex.EncodeToString(m.Args.B); got != "82626162420102" {
		t.Errorf("Arguments %s, want 82626162420102 (definite strings)", got)
	}
	if got := hex.EncodeToString(m.Kwargs.B); got != "a1616b6176" {
		t.Errorf("ArgumentsKw %s, want a1616b6176", got)
	}
}

// A bignum of an empty byte string (tag 2 or 3 over no bytes: 0 and -1, RFC 8949
// §3.4.3) reaches CBOR subscribers as the integer it is, as JSON and
// MsgPack subscribers get it. Before, it passed as it came, and node-cbor
// 10 (Autobahn|JS's CBOR) cannot convert it: "Cannot convert 0x to a
// BigInt", and the application got a Tagged object where the other
// subscribers got 0 and -1. A bignum with a magnitude passes as before.
func TestSocketCBOREmptyBignumAsInteger(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	subC, subJ, pub := s.joinRS(t, proto.CBOR), s.joinRS(t, proto.JSON), s.joinRS(t, proto.CBOR)
	subC.subscribe("com.big")
	subJ.subscribe("com.big")

	// [PUBLISH, 1, {}, "com.big", [2(no bytes), 3(no bytes), {"a": 2(no bytes)}]]
	pub.c.send(mustHexT(t, "85 10 01 a0 67"+hex.EncodeToString([]byte("com.big"))+"83 c240 c340 a1 6161 c240"))
	if m := subC.expect(proto.CodeEvent); hex.EncodeToString(m.Args.B) != "830020a1616100" {
		t.Errorf("the CBOR subscriber got Arguments %x, want 830020a1616100 (0, -1, {a: 0})", m.Args.B)
	}
	if m := subJ.expect(proto.CodeEvent); string(m.Args.B) != `[0,-1,{"a":0}]` {
		t.Errorf("the JSON subscriber got Arguments %s", m.Args.B)
	}
	// [PUBLISH, 2, {}, "com.big", [2(h'0001'), 3(h'01')]]: kept.
	pub.c.send(mustHexT(t, "85 10 02 a0 67"+hex.EncodeToString([]byte("com.big"))+"82 c2420001 c34101"))
	if m := subC.expect(proto.CodeEvent); hex.EncodeToString(m.Args.B) != "82c2420001c34101" {
		t.Errorf("the CBOR subscriber got Arguments %x, want 82c2420001c34101 (as it came)", m.Args.B)
	}
}
