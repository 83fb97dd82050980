package route

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// On a mesh too, a REGISTER and an UNREGISTER on a shared registration of
// thousands of callees cost about what they cost on one of a single other
// callee (TestReregisterCrowdWalk is the single node's). Each change of a
// registration's callees on a node announces the node's part to the
// others (meshLocalChanged: the count, and the REGISTER times of its first
// and last callees, which the first and last policies compare across
// nodes), and that walked the whole callee list to find the earliest and
// latest time, under the realm's write lock: O(callees) a REGISTER,
// UNREGISTER or leave, a crowd's coming and going quadratic, which the
// chunked callee list (210d906) had made O(1) on one node. The list is in
// REGISTER order, and the local pick takes its first (last) callee for
// first (last), as meshRebuild and nextUntried read it: those are the
// times to announce.
func TestMeshReregisterCrowdWalk(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	const crowd = 10000 // 39 full chunks of 256 and a tail of 16 (a removal copies a chunk or the tail: bounded, as on one node)
	rr := map[string]any{"invoke": "roundrobin"}
	// The crowd joins and registers in one go on the loop (a join each
	// through the harness would take seconds).
	ser := proto.MsgPack
	hello, _ := proto.EncodeValue(ser, map[string]any{"roles": allFeatures})
	helloMsg, _ := proto.Append(nil, ser, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: hello})
	ro, _ := proto.EncodeValue(ser, rr)
	regMsg, _ := proto.Append(nil, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: ro, URI: []byte("com.crowd")})
	sh := e.r.Shard(0)
	e.execs[0].do(func() {
		for range crowd {
			p := &benchPeer{ser: ser}
			ss := sh.Open(p)
			sh.Receive(ss, helloMsg)
			sh.Receive(ss, regMsg)
			if m, err := proto.Decode(ser, p.last); err != nil || m.Type != proto.CodeRegistered {
				panic("the crowd's REGISTER was not answered REGISTERED")
			}
		}
	})
	e.join(proto.MsgPack).register("com.lone", rr)
	att := e.join(proto.MsgPack)
	mm.sync()
	const n = 2000 // REGISTER, UNREGISTER pairs
	run := func(topic string) time.Duration {
		id := att.register(topic, rr)
		att.send(&proto.Message{Type: proto.CodeUnregister, Request: att.nextReq(), ID: id})
		att.expect(proto.CodeUnregistered)
		o := att.opts(rr)
		runtime.GC()                 // the set-up's garbage is not collected on the loop's time
		gc := debug.SetGCPercent(-1) // nor the other node's: no assists
		defer debug.SetGCPercent(gc)
		d := pipeline(att, 2*n, func(i int) *proto.Message {
			if i%2 == 0 {
				return &proto.Message{Type: proto.CodeRegister, Request: uint64(1000 + i), Dict: o, URI: []byte(topic)}
			}
			return &proto.Message{Type: proto.CodeUnregister, Request: uint64(1000 + i), ID: id}
		})
		mm.sync()
		return d
	}
	run("com.lone") // the heap grown, the pairs' code warm
	lone := run("com.lone")
	crowded := run("com.crowd")
	t.Logf("%d pipelined REGISTER/UNREGISTER pairs on a mesh node, the loop's CPU time: on a registration of one other callee %v; of %d callees %v", n, lone, crowd, crowded)
	if crowded > 3*lone+30*time.Millisecond {
		t.Fatalf("%d REGISTER/UNREGISTER pairs on a shared registration of %d callees took the loop %v of CPU (%v on one of a single callee): each walks the whole callee list", n, crowd, crowded, lone)
	}
	// The directory still tells the other node the first and last
	// REGISTER times: its calls with first and last go by them.
	var first, last int64
	e.execs[0].do(func() {
		reg, _ := e.r.Realm("realm1").regs.get(proto.MatchExact, "com.crowd")
		l := reg.list()
		first, last = l.at(0).at, l.at(l.len()-1).at
	})
	es[1].execs[0].do(func() {
		reg, _ := es[1].r.Realm("realm1").regs.get(proto.MatchExact, "com.crowd")
		rl := reg.remoteList()
		if len(rl) != 1 || rl[0].callees != crowd || rl[0].first != first || rl[0].last != last {
			t.Errorf("node B sees %+v, want %d callees from %d to %d", rl, crowd, first, last)
		}
	})
}
