package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON dictionary key starting with "\u0000" is a binary string (WAMP
// §Binary conversion of JSON strings), which no serializer's WAMP
// dictionary can have as a key: Decode refuses it in Options, and
// transcoding refuses it in payloads. The JSON payload scan let it
// through, so a JSON publisher's event went to JSON subscribers and was
// silently dropped for MsgPack and CBOR ones, while the publisher got
// PUBLISHED. The PUBLISH is now refused like any malformed payload.
func TestJSONBinaryKeyInPayloadRefused(t *testing.T) {
	e := newEnv(t, 1, nil)
	sub := e.join(proto.MsgPack)
	sub.subscribe("com.t", nil)
	pub := e.join(proto.JSON)
	req := pub.nextReq()
	pub.send(&proto.Message{Type: proto.CodePublish, Request: req, Dict: pub.opts(map[string]any{"acknowledge": true}), URI: []byte("com.t"),
		Args: proto.Raw{Ser: proto.JSON, B: []byte(`[]`)}, Kwargs: proto.Raw{Ser: proto.JSON, B: []byte(`{"\u0000AQID":1}`)}})
	m := pub.recv()
	if m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("publisher got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
	sub.quiet()
}
