package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A router ERROR whose message quotes the caller's URI (no callee for
// the procedure, registered already) is longer than a RawSocket client
// announcing 512 bytes, the least it may, accepts when the URI is long:
// the client still gets the ERROR, without its message, rather than
// nothing. Before, the ERROR was refused by the transport and dropped:
// the CALL (REGISTER) was never answered, and the client waited forever.
func TestRouterErrorTooLongForPeer(t *testing.T) {
	e := newEnv(t, 2, nil)
	holder := e.join(proto.JSON)
	c := e.join(proto.JSON)
	c.peer.maxLen.Store(512)
	long := strings.Repeat("a.", 250) + "ab" // a valid URI of 502 bytes

	req := c.call(long, nil, nil, nil)
	m := c.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	if m.Args.Present() {
		t.Fatalf("ERROR carries %v", argsOf(m))
	}

	holder.register(long, nil)
	req = c.nextReq()
	c.send(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: c.opts(nil), URI: []byte(long)})
	c.expectError(proto.CodeRegister, req, proto.URIProcedureAlreadyExists)

	// A short URI's ERROR keeps its message.
	req = c.call("com.none", nil, nil, nil)
	if m := c.expectError(proto.CodeCall, req, proto.URINoSuchProcedure); len(argsOf(m)) != 1 {
		t.Fatalf("ERROR args %v, want the message", argsOf(m))
	}
	if c.peer.closed.Load() {
		t.Fatal("the session was closed")
	}
}
