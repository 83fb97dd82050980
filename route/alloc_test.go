//go:build !race

package route

import (
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Allocation budgets of the routing hot paths (DESIGN §2): in steady state,
// a same-shard CALL → INVOCATION → YIELD → RESULT round trip and a PUBLISH
// fanned out to subscribers allocate nothing in the router. (The race
// detector adds allocations, hence the build tag.)

// A CALL with a timeout option also allocates nothing (its timer goes
// into the shard's typed heap) and does not read the clock (the deadline
// comes from the router's coarse clock): the Config.Now of the test counts
// its calls, and a round trip must not make one.
func TestCallRoundTripAllocatesNothing(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		for _, timeout := range []bool{false, true} {
			name := ser.String()
			if timeout {
				name += "/timeout"
			}
			t.Run(name, func(t *testing.T) { testCallRoundTripAllocs(t, ser, timeout) })
		}
	}
}

func testCallRoundTripAllocs(t *testing.T, ser proto.Serializer, timeout bool) {
	var nows atomic.Int64
	b := &testing.B{}
	r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { nows.Add(1); return time.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sh := r.Shard(0)
	sh.Start(nopExec{})
	callee, cp := benchJoin(b, sh, ser)
	caller, rp := benchJoin(b, sh, ser)
	opts, _ := proto.EncodeValue(ser, map[string]any{"receive_progress": true})
	sh.Receive(callee, encode(b, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: opts, URI: []byte("com.p")}))
	if timeout {
		opts, _ = proto.EncodeValue(ser, map[string]any{"receive_progress": true, "timeout": 60000})
	}
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
	if !timeout {
		return
	}
	// The timer heap grows to timerSweepMin before its first sweep:
	// steady state comes after that.
	for range 2 * timerSweepMin {
		round()
	}
	if n := testing.AllocsPerRun(2*timerSweepMin, round); n != 0 {
		t.Fatalf("%v allocations per call round trip across timer sweeps", n)
	}
	// The clock: the timer goroutine reads it about once per
	// millisecond while calls come; the calls themselves never.
	const rounds = 4000
	before := nows.Load()
	for range rounds {
		round()
	}
	if n := nows.Load() - before; n >= rounds {
		t.Fatalf("Config.Now read %d times in %d calls with a timeout: the call path reads the clock", n, rounds)
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
