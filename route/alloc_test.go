//go:build !race

package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Allocation budgets of the routing hot paths (DESIGN §2): in steady state,
// a same-shard CALL → INVOCATION → YIELD → RESULT round trip and a PUBLISH
// fanned out to subscribers allocate nothing in the router. (The race
// detector adds allocations, hence the build tag.)

func TestCallRoundTripAllocatesNothing(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		t.Run(ser.String(), func(t *testing.T) {
			b := &testing.B{}
			r := benchRouter(b, 1)
			defer r.Close()
			sh := r.Shard(0)
			callee, cp := benchJoin(b, sh, ser)
			caller, rp := benchJoin(b, sh, ser)
			opts, _ := proto.EncodeValue(ser, map[string]any{"receive_progress": true})
			sh.Receive(callee, encode(b, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: opts, URI: []byte("com.p")}))
			args, _ := proto.EncodeValue(ser, []any{"payload", 42})
			call := encode(b, ser, &proto.Message{Type: proto.CodeCall, Request: 1, Dict: opts, URI: []byte("com.p"), Args: args})
			var dec proto.Decoder
			var m proto.Message
			yield := make([]byte, 0, 256)
			round := func() {
				rp.n = 0
				sh.Receive(caller, call)
				if err := dec.Decode(ser, cp.last, &m); err != nil || m.Type != proto.CodeInvocation {
					t.Fatalf("invocation: %v %v", m.Type, err)
				}
				yield = yieldMsg(yield[:0], ser, m.Request, args)
				sh.Receive(callee, yield)
				if rp.n != 1 {
					t.Fatal("no result")
				}
			}
			round() // warm up pools and buffers
			if n := testing.AllocsPerRun(200, round); n != 0 {
				t.Fatalf("%v allocations per call round trip", n)
			}
		})
	}
}

func TestPublishFanoutAllocatesNothing(t *testing.T) {
	b := &testing.B{}
	r := benchRouter(b, 1)
	defer r.Close()
	sh := r.Shard(0)
	opts, _ := proto.EncodeValue(proto.MsgPack, map[string]any{})
	var peers []*benchPeer
	for i := 0; i < 10; i++ {
		ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[i%3]
		s, p := benchJoin(b, sh, ser)
		o, _ := proto.EncodeValue(ser, map[string]any{})
		sh.Receive(s, encode(b, ser, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: o, URI: []byte("com.t")}))
		peers = append(peers, p)
	}
	pub, _ := benchJoin(b, sh, proto.MsgPack)
	args, _ := proto.EncodeValue(proto.MsgPack, []any{"payload", []byte{1, 2, 3}})
	msg := encode(b, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: 1, Dict: opts, URI: []byte("com.t"), Args: args})
	sh.Receive(pub, msg)
	if n := testing.AllocsPerRun(200, func() { sh.Receive(pub, msg) }); n != 0 {
		t.Fatalf("%v allocations per publish to 10 subscribers in 3 serializers", n)
	}
	for _, p := range peers {
		if p.n != peers[0].n || p.n < 201 {
			t.Fatalf("a subscriber got %d events, another %d; want every publish", p.n, peers[0].n)
		}
	}
}
