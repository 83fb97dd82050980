package route

import (
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The mesh's side of TestCallToClosedCalleeRerouted,
// TestCallTooLongForOneCalleeRerouted and
// TestCallUnconvertibleForOneCalleeRerouted: a call from another node
// whose first INVOCATION the picked callee's Send refuses (its transport
// closed before its departure ran; longer than it accepts; a payload its
// serializer cannot carry) goes to another callee of the shared
// registration, here on a third node, and with none left ends as on one
// node (no_available_callee; payload_size_exceeded for the callee;
// invalid_argument). Before, the callee's node answered the caller's
// node with the plain error (canceled, payload_size_exceeded,
// invalid_argument), and the call failed so.
func TestMeshCallRefusedBySendRerouted(t *testing.T) {
	nan := proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}}
	big := strings.Repeat("x", 600)
	cases := []struct {
		name   string
		ser    proto.Serializer // the refusing callee's
		refuse func(*tc)
		args   func(*testing.T) proto.Raw
		want   string
	}{
		{"closed", proto.MsgPack, func(c *tc) { c.peer.closed.Store(true) }, func(t *testing.T) proto.Raw { return raw(t, proto.MsgPack, []any{1}) }, proto.URINoAvailableCallee},
		{"too long", proto.MsgPack, func(c *tc) { c.peer.maxLen.Store(512) }, func(t *testing.T) proto.Raw { return raw(t, proto.MsgPack, []any{big}) }, proto.URIPayloadSizeExceeded},
		{"unconvertible", proto.JSON, func(*tc) {}, func(*testing.T) proto.Raw { return nan }, proto.URIInvalidArgument},
	}
	for _, c := range cases {
		for _, policy := range []string{"roundrobin", "first", "last"} {
			t.Run(c.name+"/"+policy, func(t *testing.T) {
				mm, es := newMemMesh(t, 3, 1, nil)
				bad := es[1].join(c.ser)
				ok := es[2].join(proto.MsgPack)
				if policy == "last" {
					ok.register("com.r", map[string]any{"invoke": policy})
					mm.sync()
					bad.register("com.r", map[string]any{"invoke": policy})
				} else {
					bad.register("com.r", map[string]any{"invoke": policy})
					mm.sync()
					ok.register("com.r", map[string]any{"invoke": policy})
				}
				mm.sync()
				c.refuse(bad)
				caller := es[0].join(proto.MsgPack)
				call := func() uint64 {
					req := caller.nextReq()
					caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.r"), Args: c.args(t)})
					mm.sync()
					return req
				}
				for i := range 4 {
					req := call()
					var inv *proto.Message
					select {
					case inv = <-ok.peer.in:
					case m := <-caller.peer.in:
						t.Fatalf("call %d: the callee that can take it got no INVOCATION; the caller had %v %s", i, m.Type, describe(m))
					case <-time.After(5 * time.Second):
						t.Fatalf("call %d: nothing within 5 s", i)
					}
					if inv.Type != proto.CodeInvocation {
						t.Fatalf("call %d: callee got %v", i, inv.Type)
					}
					ok.yield(inv.Request, nil, []any{i})
					mm.sync()
					if m := caller.expect(proto.CodeResult); m.Request != req {
						t.Fatalf("call %d: RESULT %s", i, describe(m))
					}
				}
				// With no other callee, the call ends as on one node.
				ok.goodbye()
				mm.sync()
				req := call()
				m := caller.expectError(proto.CodeCall, req, c.want)
				if c.want == proto.URIPayloadSizeExceeded {
					if d, _ := proto.DecodeValue(m.Dict); d.(map[string]any)[KeyForCallee] != true {
						t.Fatalf("details %v, want %s", d, KeyForCallee)
					}
				}
			})
		}
	}
}
