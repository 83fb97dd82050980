package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A callee that does not accept a CALL's message (a RawSocket callee that
// announced a shorter maximum length) is passed by for another callee of
// the shared registration that does: the call is rerouted as for a
// callee's wamp.error.unavailable. When no callee takes it, the caller
// gets wamp.error.payload_size_exceeded marked as the router's own for
// the callee (KeyForCallee: the HTTP gateway's 413), as before. Before,
// every call the policy gave the short callee failed so, though another
// callee could serve it (every other call, round robin).
func TestCallTooLongForOneCalleeRerouted(t *testing.T) {
	big := strings.Repeat("x", 600)
	t.Run("shared", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		short, long := e.join(proto.JSON), e.join(proto.JSON)
		short.peer.maxLen.Store(512)
		short.register("com.up", map[string]any{"invoke": "roundrobin"})
		long.register("com.up", map[string]any{"invoke": "roundrobin"})
		caller := e.join(proto.JSON)
		for i := range 4 {
			req := caller.call("com.up", nil, []any{big}, nil)
			e.sync()
			inv := long.expect(proto.CodeInvocation)
			long.yield(inv.Request, nil, []any{i})
			if m := caller.expect(proto.CodeResult); m.Request != req {
				t.Fatalf("call %d: RESULT %s", i, describe(m))
			}
		}
		short.quiet()
		// A call it takes still goes to it in turn.
		req := caller.call("com.up", nil, []any{"small"}, nil)
		e.sync()
		k, inv := invoked(t, []*tc{short, long})
		[]*tc{short, long}[k].yield(inv.Request, nil, nil)
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("RESULT %s", describe(m))
		}
	})
	t.Run("none takes it", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		a, b := e.join(proto.JSON), e.join(proto.JSON)
		for _, c := range []*tc{a, b} {
			c.peer.maxLen.Store(512)
			c.register("com.up", map[string]any{"invoke": "roundrobin"})
		}
		caller := e.join(proto.JSON)
		req := caller.call("com.up", nil, []any{big}, nil)
		m := caller.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
		if d, _ := proto.DecodeValue(m.Dict); d.(map[string]any)[KeyForCallee] != true {
			t.Fatalf("details %v, want %s", d, KeyForCallee)
		}
		// Each refusal counted (edgewamp_invocations_refused_total{reason="too_big"}),
		// as a serializer's is (not_convertible): before, nowhere.
		if st := e.r.Stats(); st.CallsRefusedTooBig != 2 || st.CallsRefusedNotConvertible != 0 {
			t.Fatalf("a call too long for both callees: %d refusals counted too_big, %d not_convertible; want 2 and 0", st.CallsRefusedTooBig, st.CallsRefusedNotConvertible)
		}
	})
	t.Run("sole callee", func(t *testing.T) {
		e := newEnv(t, 2, nil)
		a := e.join(proto.JSON)
		a.peer.maxLen.Store(512)
		a.register("com.up", nil)
		caller := e.join(proto.JSON)
		req := caller.call("com.up", nil, []any{big}, nil)
		m := caller.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
		if d, _ := proto.DecodeValue(m.Dict); d.(map[string]any)[KeyForCallee] != true {
			t.Fatalf("details %v, want %s", d, KeyForCallee)
		}
	})
}

// Likewise a payload the picked callee's serializer cannot carry (a
// MsgPack NaN for a JSON callee) goes to a callee whose serializer can;
// with none, the caller gets wamp.error.invalid_argument as before.
// Before, every call the policy gave the JSON callee failed so.
func TestCallUnconvertibleForOneCalleeRerouted(t *testing.T) {
	nan := proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}}
	call := func(c *tc) uint64 {
		req := c.nextReq()
		c.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: c.opts(nil), URI: []byte("com.p"), Args: nan})
		return req
	}
	e := newEnv(t, 2, nil)
	js, mp := e.join(proto.JSON), e.join(proto.MsgPack)
	js.register("com.p", map[string]any{"invoke": "roundrobin"})
	rid := mp.register("com.p", map[string]any{"invoke": "roundrobin"})
	caller := e.join(proto.MsgPack)
	for i := range 4 {
		req := call(caller)
		e.sync()
		inv := mp.expect(proto.CodeInvocation)
		mp.yield(inv.Request, nil, []any{i})
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("call %d: RESULT %s", i, describe(m))
		}
	}
	js.quiet()
	mp.send(&proto.Message{Type: proto.CodeUnregister, Request: mp.nextReq(), ID: rid})
	mp.expect(proto.CodeUnregistered)
	req := call(caller)
	caller.expectError(proto.CodeCall, req, proto.URIInvalidArgument)
}

// A payload one callee's serializer cannot carry cannot be carried by its
// other callees of that serializer either: a rerouted call passes them by
// rather than converting the payload again for each. Before, a MsgPack
// caller's NaN to a round robin registration of JSON callees was
// converted once per JSON callee (up to 17: a 1.2 MiB call took ~485 ms
// of the callee's event loop where one conversion takes ~50 ms), every
// one counted rerouted, and the call reached a MsgPack callee only after
// every JSON one before it in turn.
func TestCallUnconvertibleSkipsItsSerializer(t *testing.T) {
	nan := proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}}
	e := newEnv(t, 2, nil)
	var js []*tc
	for range 4 {
		c := e.join(proto.JSON)
		c.register("com.p", map[string]any{"invoke": "roundrobin"})
		js = append(js, c)
	}
	mp := e.join(proto.MsgPack)
	mp.register("com.p", map[string]any{"invoke": "roundrobin"})
	caller := e.join(proto.MsgPack)
	for i := range 4 { // each call goes to a JSON callee first
		req := caller.nextReq()
		caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(nil), URI: []byte("com.p"), Args: nan})
		e.sync()
		inv := mp.expect(proto.CodeInvocation)
		mp.yield(inv.Request, nil, []any{i})
		if m := caller.expect(proto.CodeResult); m.Request != req {
			t.Fatalf("call %d: RESULT %s", i, describe(m))
		}
		// The next call's turn: past the MsgPack callee to a JSON one.
		if i == 0 {
			req := caller.call("com.p", nil, []any{"plain"}, nil)
			e.sync()
			k, inv := invoked(t, js)
			js[k].yield(inv.Request, nil, nil)
			if m := caller.expect(proto.CodeResult); m.Request != req {
				t.Fatalf("RESULT %s", describe(m))
			}
		}
	}
	// One reroute a call: from the JSON callee picked to the MsgPack one,
	// none to another JSON callee.
	if st := e.r.Stats(); st.CallsRerouted != 4 || st.CallsRefusedNotConvertible != 4 {
		t.Fatalf("%d calls rerouted %d times, want once each; %d refused for a serializer, want 4", 4, st.CallsRerouted, st.CallsRefusedNotConvertible)
	}
	for _, c := range js {
		c.quiet()
	}
}
