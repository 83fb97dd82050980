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
	join := func(ser proto.Serializer) *wamp {
		p := newWAMP(t, dialRS(t, s.url, ser, 15), ser)
		p.join()
		return p
	}
	subC, subJ, pub := join(proto.CBOR), join(proto.JSON), join(proto.CBOR)
	subC.subscribe("com.dates")
	subJ.subscribe("com.dates")

	hx := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	date := "c0 74323032302d30392d31335431323a32363a34305a" // tag 0 "2020-09-13T12:26:40Z"
	// [PUBLISH, 1, {}, "com.dates", [date, undefined, {a: undefined, b: 1}, 55799(1)]]
	msg := hx("85 10 01 a0 69" + hex.EncodeToString([]byte("com.dates")) + "84" + date + "f7 a2 6161 f7 6162 01 d9d9f7 01")
	pub.c.send(msg)

	if m := subC.expect(proto.CodeEvent); !bytes.Equal(m.Args.B, hx("84"+date+"f7 a2 6161 f7 6162 01 01")) {
		t.Errorf("the CBOR subscriber got Arguments %x, want %s", m.Args.B, strings.ReplaceAll("84"+date+"f7 a2 6161 f7 6162 01 01", " ", ""))
	}
	if m := subJ.expect(proto.CodeEvent); string(m.Args.B) != `["2020-09-13T12:26:40Z",null,{"b":1},1]` {
		t.Errorf("the JSON subscriber got Arguments %s", m.Args.B)
	}
}
