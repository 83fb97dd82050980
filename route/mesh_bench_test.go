package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// benchMesh is the Mesh of one of two routers in BenchmarkMeshCallRouting:
// it keeps the last envelope its router sent to the other node, and tells
// the other router of its registrations at once.
type benchMesh struct {
	self  MeshNode
	name  string
	other *Router
	sent  []byte
	n     int
}

func (m *benchMesh) Subscribe(string, proto.Match, string)   {}
func (m *benchMesh) Unsubscribe(string, proto.Match, string) {}
func (m *benchMesh) Registered(realm string, reg MeshReg) {
	m.other.MeshUpdate(m.self, m.name, MeshRealmReg{Realm: realm, MeshReg: reg})
}
func (m *benchMesh) Claim(_ string, _ proto.Match, _ string, done func(error)) { done(nil) }
func (m *benchMesh) Release(string, proto.Match, string)                       {}
func (m *benchMesh) Released(done func())                                      { done() }
func (m *benchMesh) Publish(string, []byte, []byte) error                      { return nil }
func (m *benchMesh) Send(_ MeshNode, env []byte) error {
	m.sent = append(m.sent[:0], env...)
	m.n++
	return nil
}
func (m *benchMesh) Gather([]byte, func([][]byte, []string)) error { return nil }

// queueExec is an Executor that runs its tasks when told to, as an event
// loop runs them after the round that posted them.
type queueExec struct{ q []func() }

func (e *queueExec) Execute(f func()) error { e.q = append(e.q, f); return nil }

// run runs the tasks queued, and those they queue, in order.
func (e *queueExec) run() {
	for i := 0; i < len(e.q); i++ {
		e.q[i]()
		e.q[i] = nil
	}
	e.q = e.q[:0]
}

// meshPair is a caller on node A and a callee on node B, each router fed
// by hand on one goroutine (the mesh's transport left out).
type meshPair struct {
	ser            proto.Serializer
	ra, rb         *Router
	xa, xb         *queueExec
	ma, mb         *benchMesh
	caller, callee *Session
	rp, cp         *benchPeer
	args           proto.Raw
	enc            proto.Encoder
	dec            proto.Decoder
	m              proto.Message
	call, yield    []byte
	callOpts       proto.Raw // the CALL's options, when set (a timeout)
	envA, envB     []byte    // the envelopes handed over, when reused
}

const meshPairProc = "com.bench.mesh"

var meshPairProcB = []byte(meshPairProc)

func newMeshPair(b *testing.B, ser proto.Serializer) *meshPair {
	p := &meshPair{ser: ser, ra: benchRouter(b, 1), rb: benchRouter(b, 1), xa: &queueExec{}, xb: &queueExec{}}
	p.ra.Shard(0).Start(p.xa)
	p.rb.Shard(0).Start(p.xb)
	p.ma = &benchMesh{self: 1, name: "nodeA", other: p.rb}
	p.mb = &benchMesh{self: 2, name: "nodeB", other: p.ra}
	if err := p.ra.AttachMesh(p.ma, p.ma.name, MeshSlot(p.ma.name)); err != nil {
		b.Fatal(err)
	}
	if err := p.rb.AttachMesh(p.mb, p.mb.name, MeshSlot(p.mb.name)); err != nil {
		b.Fatal(err)
	}
	p.callee, p.cp = benchJoin(b, p.rb.Shard(0), ser)
	opts, _ := proto.EncodeValue(ser, map[string]any{})
	p.rb.Shard(0).Receive(p.callee, encode(b, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: opts, URI: []byte(meshPairProc)}))
	p.caller, p.rp = benchJoin(b, p.ra.Shard(0), ser)
	p.xa.run()
	p.xb.run()
	p.args, _ = proto.EncodeValue(ser, []any{"0123456789012345678901234567890123456789012345678901"})
	return p
}

// round makes call req: CALL → call envelope → INVOCATION → YIELD →
// result envelope → RESULT. With fresh, each envelope is handed over in a
// new buffer, as edge hands over what NATS delivers; without, in a buffer
// of the pair's (every message of the call has been sent when round
// returns, so nothing holds it).
func (p *meshPair) round(req uint64, fresh bool) error {
	p.call, _ = p.enc.Append(p.call[:0], p.ser, &proto.Message{Type: proto.CodeCall, Request: req, Dict: p.callOpts, URI: meshPairProcB, Args: p.args})
	n := p.ma.n
	p.ra.Shard(0).Receive(p.caller, p.call)
	p.xa.run()
	if p.ma.n != n+1 {
		return fmt.Errorf("call %d sent no call envelope to node B; the caller got %s", req, lastMsg(p.ser, p.rp))
	}
	p.rb.MeshDeliver(p.ma.self, handOver(&p.envA, p.ma.sent, fresh))
	p.xb.run()
	if err := p.dec.Decode(p.ser, p.cp.last, &p.m); err != nil || p.m.Type != proto.CodeInvocation {
		return fmt.Errorf("call %d: the callee's last message is %s", req, lastMsg(p.ser, p.cp))
	}
	p.yield, _ = p.enc.Append(p.yield[:0], p.ser, &proto.Message{Type: proto.CodeYield, Request: p.m.Request, Args: p.args})
	n = p.mb.n
	p.rb.Shard(0).Receive(p.callee, p.yield)
	p.xb.run()
	if p.mb.n != n+1 {
		return fmt.Errorf("call %d: the YIELD sent no result envelope to node A", req)
	}
	n = p.rp.n
	p.ra.MeshDeliver(p.mb.self, handOver(&p.envB, p.mb.sent, fresh))
	p.xa.run()
	if p.rp.n != n+1 {
		return fmt.Errorf("call %d got no RESULT; the caller got %s", req, lastMsg(p.ser, p.rp))
	}
	return nil
}

// handOver copies env for MeshDeliver: into a new buffer when fresh, else
// into *buf.
func handOver(buf *[]byte, env []byte, fresh bool) []byte {
	if fresh {
		return append([]byte(nil), env...)
	}
	*buf = append((*buf)[:0], env...)
	return *buf
}

// BenchmarkMeshCallRouting is BenchmarkCallRouting across two nodes
// (meshPair). It measures route's own share of a call across nodes, both
// nodes together.
func BenchmarkMeshCallRouting(b *testing.B) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack} {
		b.Run("ser="+ser.String(), func(b *testing.B) {
			p := newMeshPair(b, ser)
			b.ReportAllocs()
			b.ResetTimer()
			for req := uint64(1); req <= uint64(b.N); req++ {
				if err := p.round(req, true); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := p.dec.Decode(ser, p.rp.last, &p.m); err != nil || p.m.Type != proto.CodeResult {
				b.Fatalf("the caller's last message: %v %v", p.m.Type, err)
			}
		})
	}
}

// A call across nodes allocates three objects in route: the payload's
// carrier on each node and the call's origin on the callee's. The call's
// realm, URIs and caller's identity are read in place in the envelope
// (they were five strings a call), and a shard's drain is handed to its
// executor without a new closure.
func TestMeshCallAllocations(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack} {
		p := newMeshPair(&testing.B{}, ser)
		req := uint64(0)
		round := func() {
			req++
			if err := p.round(req, false); err != nil {
				t.Fatal(err)
			}
		}
		round() // warm up pools and buffers
		if n := testing.AllocsPerRun(200, round); n > 3 {
			t.Errorf("%v: %v allocations per call across nodes, want at most 3", ser, n)
		}
		// With a timeout, which also bounds the invocation on the
		// callee's node (meshInvExpired): a timer on each node, no more
		// allocations.
		p.callOpts, _ = proto.EncodeValue(ser, map[string]any{"timeout": 60000})
		round()
		if n := testing.AllocsPerRun(200, round); n > 3 {
			t.Errorf("%v: %v allocations per call across nodes with a timeout, want at most 3", ser, n)
		}
		p.callOpts = proto.Raw{}
		p.ra.Close()
		p.rb.Close()
	}
}

// lastMsg describes the last message p was sent.
func lastMsg(ser proto.Serializer, p *benchPeer) string {
	var dec proto.Decoder
	var m proto.Message
	if err := dec.Decode(ser, p.last, &m); err != nil {
		return "undecodable: " + err.Error()
	}
	return fmt.Sprintf("%v (request %d, %q)", m.Type, m.Request, m.URI)
}
