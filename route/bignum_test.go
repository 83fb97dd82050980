package route

import (
	"bytes"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON caller's integer of 100 000 digits, for a CBOR callee: converting
// it cost the callee's shard time quadratic in its length (a 16 MiB
// message held the shard for minutes). A JSON integer beyond 8192 bits is
// now refused when read (ABORT wamp.error.protocol_violation), and the
// conversion's bound still holds for a CBOR caller's bignum of 2 KiB to a
// JSON callee: the caller gets invalid_argument. The callee gets nothing.
func TestHugeIntegerCallRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, jcallee, caller := e.join(proto.CBOR), e.join(proto.JSON), e.join(proto.JSON)
	callee.register("com.big", nil)
	jcallee.register("com.big.json", nil)
	args := append(append([]byte("["), bytes.Repeat([]byte("7"), 100000)...), ']')
	req := caller.nextReq()
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.big"), Args: proto.Raw{Ser: proto.JSON, B: args}})
	if m := caller.recv(); m.Type != proto.CodeAbort || string(m.URI) != proto.URIProtocolViolation {
		t.Fatalf("the JSON caller got %v %s, want ABORT %s", m.Type, describe(m), proto.URIProtocolViolation)
	}
	callee.quiet()

	ccaller := e.join(proto.CBOR)
	n := 2048
	bignum := append([]byte{0x81, 0xc2, 0x59, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0x77}, n)...)
	req = ccaller.nextReq()
	ccaller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: ccaller.opts(nil), URI: []byte("com.big.json"), Args: proto.Raw{Ser: proto.CBOR, B: bignum}})
	ccaller.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	jcallee.quiet()
}
