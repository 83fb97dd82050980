package route

import (
	"bytes"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON caller's integer of 100 000 digits, for a CBOR callee: converting
// it cost the callee's shard time quadratic in its length (a 16 MiB
// message held the shard for minutes). The caller now gets
// invalid_argument, and the callee nothing.
func TestHugeIntegerCallRefused(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee, caller := e.join(proto.CBOR), e.join(proto.JSON)
	callee.register("com.big", nil)
	args := append(append([]byte("["), bytes.Repeat([]byte("7"), 100000)...), ']')
	req := caller.nextReq()
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.big"), Args: proto.Raw{Ser: proto.JSON, B: args}})
	caller.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
	callee.quiet()
}
