package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON \u escape of a lone surrogate in a URI became U+FFFD, so
// "com.x\ud800" and "com.x\udc00" were one procedure, topic or realm, and
// "a\ud800", "a\udc00" one authid: a REGISTER of the one was reached by a
// CALL of the other, and a client that joined as the one was the other.
// MsgPack and CBOR URIs with invalid UTF-8 cost the whole session (ABORT
// protocol_violation) where any other invalid URI gets an ERROR. Now such
// a URI is answered as an invalid one in every serializer:
// wamp.error.invalid_uri for REGISTER, SUBSCRIBE, CALL and an acknowledged
// PUBLISH (the session goes on), ABORT invalid_uri for HELLO's realm, ABORT
// protocol_violation for HELLO's authid. Payloads keep their U+FFFD.
func TestLoneSurrogateURIsRefused(t *testing.T) {
	e := newEnv(t, 1, nil)
	c := e.join(proto.JSON)
	c.sendBytes([]byte(`[64,11,{},"com.x\ud800"]`))
	c.expectError(proto.CodeRegister, 11, proto.URIInvalidURI)
	c.sendBytes([]byte(`[32,12,{"match":"prefix"},"com.x\udc00"]`))
	c.expectError(proto.CodeSubscribe, 12, proto.URIInvalidURI)
	c.sendBytes([]byte(`[48,13,{},"com.x\udc00",["payload \ud800 kept"]]`))
	c.expectError(proto.CodeCall, 13, proto.URIInvalidURI)
	c.sendBytes([]byte(`[16,14,{"acknowledge":true},"com.x\ud800"]`))
	c.expectError(proto.CodePublish, 14, proto.URIInvalidURI)
	c.sendBytes([]byte(`[16,15,{},"com.x\ud800"]`))
	c.quiet()
	// The session goes on, and payloads are as before.
	c.register("com.ok", nil)
	c.sendBytes([]byte(`[16,16,{"acknowledge":true},"com.ok",["a\ud800"],{"k":"\udc00"}]`))
	c.expect(proto.CodePublished)

	m := e.join(proto.MsgPack)
	m.sendBytes([]byte{0x94, 0x30, 0x11, 0x80, 0xa6, 'c', 'o', 'm', '.', 'x', 0xff})
	m.expectError(proto.CodeCall, 0x11, proto.URIInvalidURI)
	m.register("com.ok2", nil)

	r := e.connect(proto.JSON)
	r.sendBytes([]byte(`[1,"realm1\ud800",{"roles":{"caller":{}}}]`))
	if a := r.expect(proto.CodeAbort); string(a.URI) != proto.URIInvalidURI {
		t.Fatalf("HELLO with a lone surrogate in its realm: ABORT %s, want %s", a.URI, proto.URIInvalidURI)
	}
	a := e.connect(proto.JSON)
	a.sendBytes([]byte(`[1,"trusted",{"authmethods":["x-trust"],"authid":"a\ud800","roles":{"caller":{}}}]`))
	if ab := a.expect(proto.CodeAbort); string(ab.URI) != proto.URIProtocolViolation {
		t.Fatalf("HELLO with a lone surrogate in its authid: ABORT %s, want %s", ab.URI, proto.URIProtocolViolation)
	}
}
