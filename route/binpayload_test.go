package route

import (
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
