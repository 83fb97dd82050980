package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session's on_join reaches a callee of its own loop that subscribes to
// wamp.session.on_join before the session's first INVOCATION, even when a
// meta event another loop posted to this one still waits in its mailbox
// (the on_join is then posted behind it): the INVOCATION waits behind them
// too, and the chunks and the CANCEL read after the CALL in the same round
// wait behind the INVOCATION, in order. Before, the INVOCATION was
// delivered inline, ahead of both on_join; a fix that queued only the
// INVOCATION would let the CANCEL's INTERRUPT and the chunks, delivered
// inline, overtake it.
func TestOnJoinBeforeInvocationSameLoop(t *testing.T) {
	e := newEnv(t, 2, nil)
	s := e.connectOn(0, proto.MsgPack)
	s.hello("realm1", allFeatures, nil)
	s.id = s.expect(proto.CodeWelcome).ID
	onJoin := s.subscribe("wamp.session.on_join", nil)
	reg := s.register("com.p", nil)
	enc := func(c *tc, m *proto.Message) []byte {
		b, err := c.enc.Append(nil, c.peer.ser, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d, err := proto.EncodeValue(proto.JSON, map[string]any{"roles": allFeatures})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 6 {
		y := e.connectOn(1, proto.JSON) // joins on the other loop
		x := e.connectOn(0, proto.JSON)
		helloY := enc(y, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: d})
		msgs := [][]byte{enc(x, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: d})}
		progressive := round%2 == 1
		if progressive {
			for i, more := range []bool{true, true, false} {
				o := map[string]any{}
				if more {
					o["progress"] = true
				}
				msgs = append(msgs, enc(x, &proto.Message{Type: proto.CodeCall, Request: 1, Dict: x.opts(o),
					URI: []byte("com.p"), Args: raw(t, proto.JSON, []any{i})}))
			}
		} else {
			msgs = append(msgs, enc(x, &proto.Message{Type: proto.CodeCall, Request: 1, Dict: x.opts(nil), URI: []byte("com.p")}),
				enc(x, &proto.Message{Type: proto.CodeCancel, Request: 1, Dict: x.opts(map[string]any{"mode": "kill"})}))
		}
		x.exec.do(func() {
			// y's on_join is posted to this loop while it is busy
			// reading x's HELLO, CALL and what follows (in one round).
			y.exec.do(func() { y.sh.Receive(y.sess, helloY) })
			for _, b := range msgs {
				x.sh.Receive(x.sess, b)
			}
		})
		e.sync()
		y.expect(proto.CodeWelcome)
		x.id = x.expect(proto.CodeWelcome).ID
		var got []*proto.Message
		want := 4 // two on_join, the INVOCATION, the INTERRUPT
		if progressive {
			want = 5 // two on_join, three chunks
		}
		for range want {
			got = append(got, s.recv())
		}
		desc := func() string {
			out := ""
			for _, m := range got {
				out += " " + m.Type.String() + " " + describe(m)
			}
			return out
		}
		if got[0].Type != proto.CodeEvent || got[0].ID != onJoin || got[1].Type != proto.CodeEvent || got[1].ID != onJoin {
			t.Fatalf("round %d: want on_join of y and of x before x's call; got%s", round, desc())
		}
		if d := argsOf(got[1])[0].(map[string]any); d["session"] != int64(x.id) {
			t.Fatalf("round %d: second on_join %v, want x's (%d)", round, d, x.id)
		}
		inv := got[2]
		if inv.Type != proto.CodeInvocation || inv.ID != reg {
			t.Fatalf("round %d: want the INVOCATION third; got%s", round, desc())
		}
		if progressive {
			for i, m := range got[2:] {
				if m.Type != proto.CodeInvocation || m.Request != inv.Request || argsOf(m)[0] != int64(i) {
					t.Fatalf("round %d: chunk %d: got%s", round, i, desc())
				}
			}
			s.yield(inv.Request, nil, nil)
			x.expect(proto.CodeResult)
		} else {
			if got[3].Type != proto.CodeInterrupt || got[3].Request != inv.Request {
				t.Fatalf("round %d: want the INTERRUPT after its INVOCATION; got%s", round, desc())
			}
			s.send(&proto.Message{Type: proto.CodeError, ReqType: proto.CodeInvocation, Request: inv.Request, Dict: s.opts(nil), URI: []byte(proto.URICanceled)})
			x.expect(proto.CodeError)
		}
		x.goodbye()
		y.goodbye()
		e.sync()
		for drained := false; !drained; {
			select {
			case m := <-s.peer.in:
				if m.Type != proto.CodeEvent {
					t.Fatalf("round %d: unexpected %v %s", round, m.Type, describe(m))
				}
			default:
				drained = true
			}
		}
	}
}
