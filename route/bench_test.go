package route

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// Routing benchmarks. Each goroutine of b.RunParallel plays one shard's
// event loop: it owns a shard and feeds it messages directly, so the
// benchmark measures the router (decode, lookup, state, encode) and the
// contention on the realm-wide tables, not a transport. With -cpu 1,2 it
// shows whether routing scales with cores (no global lock on the path).

type nopExec struct{}

func (nopExec) Execute(f func()) error { f(); return nil }

// benchPeer records the last message it was sent.
type benchPeer struct {
	ser    proto.Serializer
	last   []byte
	n      int
	remote string // its RemoteAddr: its owner's (subscriptionOwner)
}

func (p *benchPeer) Serializer() proto.Serializer { return p.ser }
func (p *benchPeer) Send(b []byte, _ Class) error {
	p.last = append(p.last[:0], b...)
	p.n++
	return nil
}
func (p *benchPeer) Close() {}
func (p *benchPeer) Transport() TransportInfo {
	return TransportInfo{Type: "bench", RemoteAddr: p.remote}
}

// Backlog implements BacklogPeer, as loop's connections do: the calls
// pay the check of a callee's backlog (calleeshare.go), never past half.
func (p *benchPeer) Backlog() (queued, high int) { return len(p.last), 256 << 10 }

func benchRouter(b *testing.B, shards int) *Router {
	r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, Shards: shards, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < shards; i++ {
		r.Shard(i).Start(nopExec{})
	}
	b.Cleanup(r.Close)
	return r
}

func benchJoin(b *testing.B, sh *Shard, ser proto.Serializer) (*Session, *benchPeer) {
	return benchJoinFrom(b, sh, ser, "")
}

// benchJoinFrom is benchJoin from the remote address remote.
func benchJoinFrom(b *testing.B, sh *Shard, ser proto.Serializer, remote string) (*Session, *benchPeer) {
	p := &benchPeer{ser: ser, remote: remote}
	ss := sh.Open(p)
	hello, _ := proto.EncodeValue(ser, map[string]any{"roles": allFeatures})
	msg, _ := proto.Append(nil, ser, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: hello})
	sh.Receive(ss, msg)
	if ss.state != stEstablished {
		b.Fatal("join failed")
	}
	return ss, p
}

func encode(b *testing.B, ser proto.Serializer, m *proto.Message) []byte {
	out, err := proto.Append(nil, ser, m)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkCallRouting: CALL → INVOCATION → YIELD → RESULT, 64-byte
// payload, caller and callee on the goroutine's own shard.
func BenchmarkCallRouting(b *testing.B) { benchCallRouting(b, nil) }

// BenchmarkCallRoutingTimeout is BenchmarkCallRouting with a timeout option
// on every CALL (a timer per call, the deadline from the coarse clock).
func BenchmarkCallRoutingTimeout(b *testing.B) {
	benchCallRouting(b, map[string]any{"timeout": 60000})
}

// BenchmarkCallRoutingShared is BenchmarkCallRouting on a roundrobin
// registration with two callees on the goroutine's shard, answering in
// turn.
func BenchmarkCallRoutingShared(b *testing.B) { benchCallRoutingN(b, nil, 2) }

// BenchmarkCallRoutingCrowd is BenchmarkCallRoutingShared with 1,000
// callees: a pick past the first chunk of the callee list (calleeList).
func BenchmarkCallRoutingCrowd(b *testing.B) { benchCallRoutingN(b, nil, 1000) }

func benchCallRouting(b *testing.B, callOpts map[string]any) { benchCallRoutingN(b, callOpts, 1) }

func benchCallRoutingN(b *testing.B, callOpts map[string]any, callees int) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack} {
		b.Run("ser="+ser.String(), func(b *testing.B) {
			r := benchRouter(b, 2)
			var next atomic.Int32
			payload := []any{"0123456789012345678901234567890123456789012345678901"}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)-1) % 2
				sh := r.Shard(i)
				proc := "com.bench.p" + strconv.Itoa(i)
				regOpts := map[string]any{}
				if callees > 1 {
					regOpts["invoke"] = "roundrobin"
				}
				opts, _ := proto.EncodeValue(ser, regOpts)
				var ces []*Session
				var cps []*benchPeer
				for range callees {
					callee, cp := benchJoin(b, sh, ser)
					sh.Receive(callee, encode(b, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: opts, URI: []byte(proc)}))
					ces, cps = append(ces, callee), append(cps, cp)
				}
				caller, rp := benchJoin(b, sh, ser)
				args, _ := proto.EncodeValue(ser, payload)
				var co proto.Raw
				if callOpts != nil {
					co, _ = proto.EncodeValue(ser, callOpts)
				}
				var dec proto.Decoder
				var m proto.Message
				var call, yield []byte
				req := uint64(0)
				for pb.Next() {
					req++
					call = callMsgOpts(call[:0], ser, req, co, proc, args)
					sh.Receive(caller, call)
					k := int(req-1) % callees // roundrobin from the first
					callee, cp := ces[k], cps[k]
					if err := dec.Decode(ser, cp.last, &m); err != nil || m.Type != proto.CodeInvocation {
						b.Fatalf("invocation: %v %v", m.Type, err)
					}
					yield = yieldMsg(yield[:0], ser, m.Request, args)
					sh.Receive(callee, yield)
					if rp.n == 0 {
						b.Fatal("no result")
					}
				}
			})
		})
	}
}

func callMsgOpts(dst []byte, ser proto.Serializer, req uint64, opts proto.Raw, proc string, args proto.Raw) []byte {
	var e proto.Encoder
	m := proto.Message{Type: proto.CodeCall, Request: req, Dict: opts, URI: []byte(proc), Args: args}
	out, _ := e.Append(dst, ser, &m)
	return out
}

func yieldMsg(dst []byte, ser proto.Serializer, inv uint64, args proto.Raw) []byte {
	var e proto.Encoder
	m := proto.Message{Type: proto.CodeYield, Request: inv, Args: args}
	out, _ := e.Append(dst, ser, &m)
	return out
}

// BenchmarkPublishFanout: one PUBLISH to subs subscribers on the
// goroutine's shard; reports events/s.
func BenchmarkPublishFanout(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run("subs="+strconv.Itoa(subs), func(b *testing.B) {
			r := benchRouter(b, 2)
			var next atomic.Int32
			args, _ := proto.EncodeValue(proto.MsgPack, []any{"0123456789012345678901234567890123456789012345678901"})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)-1) % 2
				sh := r.Shard(i)
				topic := "com.bench.t" + strconv.Itoa(i)
				opts, _ := proto.EncodeValue(proto.MsgPack, map[string]any{})
				for k := 0; k < subs; k++ {
					s, _ := benchJoin(b, sh, proto.MsgPack)
					sh.Receive(s, encode(b, proto.MsgPack, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: opts, URI: []byte(topic)}))
				}
				pub, _ := benchJoin(b, sh, proto.MsgPack)
				msg := encode(b, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: 1, Dict: opts, URI: []byte(topic), Args: args})
				for pb.Next() {
					sh.Receive(pub, msg)
				}
			})
			b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkPublishOtherShard: one PUBLISH on shard 0 to one subscriber on
// shard 1 (the executor runs the mailbox's drain inline): the cross-shard
// hand-off of a publication (its copy, the post, the drain).
func BenchmarkPublishOtherShard(b *testing.B) {
	r := benchRouter(b, 2)
	args, _ := proto.EncodeValue(proto.MsgPack, []any{"0123456789012345678901234567890123456789012345678901"})
	opts, _ := proto.EncodeValue(proto.MsgPack, map[string]any{})
	s, _ := benchJoin(b, r.Shard(1), proto.MsgPack)
	r.Shard(1).Receive(s, encode(b, proto.MsgPack, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: opts, URI: []byte("com.bench.t")}))
	pub, _ := benchJoin(b, r.Shard(0), proto.MsgPack)
	msg := encode(b, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: 1, Dict: opts, URI: []byte("com.bench.t"), Args: args})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Shard(0).Receive(pub, msg)
	}
}

// BenchmarkWildcardWorstCase: one CALL (PUBLISH) to a URI the shard's
// lookup cache does not hold, when the realm has n wildcard registrations
// (subscriptions) that all match every component of the URI but the last,
// the worst shape for the index: the patterns a.a.…a.z whose k = log2(n)
// first components are each "a" or a wildcard, called at a.a.…a.<i> (a
// new last component each time, so that every CALL walks the 2^k paths
// and finds nothing). n = 4096 is the realm's default bound
// (Config.MaxRealmWildcardRegistrations and ...Subscriptions); a larger n
// is skipped where the bound refuses it. The patterns come from sessions
// of 1,024 each (the default per-session bound).
//
// With deep, each pattern has 64 components (maxWildcardComponents): the
// k first as above, then "a"s, then "z", so that each pattern's way past
// the k first is its own. A pattern the router refuses (the realm's
// bound, maxWildcardWalk) is left out; "taken" reports how many were not.
func BenchmarkWildcardWorstCase(b *testing.B) {
	for _, kind := range []string{"call", "publish"} {
		for _, n := range []int{1024, 4096, 16384} {
			b.Run(kind+"/patterns="+strconv.Itoa(n), func(b *testing.B) { benchWildcardWorstCase(b, kind == "call", n, false) })
		}
		b.Run(kind+"/deep/patterns=4096", func(b *testing.B) { benchWildcardWorstCase(b, kind == "call", 4096, true) })
	}
}

func benchWildcardWorstCase(b *testing.B, call bool, n int, deep bool) {
	const ser = proto.MsgPack
	r := benchRouter(b, 1)
	sh := r.Shard(0)
	k := 0
	for 1<<k < n {
		k++
	}
	code, ok := proto.CodeSubscribe, proto.CodeSubscribed
	if call {
		code, ok = proto.CodeRegister, proto.CodeRegistered
	}
	opts, _ := proto.EncodeValue(ser, map[string]any{"match": "wildcard"})
	var dec proto.Decoder
	var m proto.Message
	var ss *Session
	var sp *benchPeer
	depth := k + 1
	if deep {
		depth = maxWildcardComponents
	}
	taken := 0
	for i := 0; i < n; i++ {
		// 16 owners (addresses) at 4,096: an owner's own patterns may
		// make a walk of a quarter of maxWildcardWalk (walkShares), the
		// owners together all of it.
		if i%256 == 0 {
			ss, sp = benchJoinFrom(b, sh, ser, "192.0.2."+strconv.Itoa(i/256%250+1)+":1000")
		}
		comps := make([]string, depth)
		for j := 0; j < depth-1; j++ {
			if j >= k || i&(1<<j) == 0 {
				comps[j] = "a"
			}
		}
		comps[depth-1] = "z"
		sh.Receive(ss, encode(b, ser, &proto.Message{Type: code, Request: uint64(i + 1), Dict: opts, URI: []byte(strings.Join(comps, "."))}))
		if err := dec.Decode(ser, sp.last, &m); err != nil {
			b.Fatal(err)
		} else if m.Type == ok {
			taken++
		}
	}
	caller, cp := benchJoin(b, sh, ser)
	prefix := strings.Repeat("a.", depth-1)
	empty, _ := proto.EncodeValue(ser, map[string]any{})
	var msg []byte
	var enc proto.Encoder
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := proto.Message{Type: proto.CodePublish, Request: uint64(i + 1), Dict: empty, URI: []byte(prefix + "c" + strconv.Itoa(i))}
		if call {
			out.Type = proto.CodeCall
		}
		msg, _ = enc.Append(msg[:0], ser, &out)
		sh.Receive(caller, msg)
	}
	b.StopTimer()
	b.ReportMetric(float64(taken), "taken")
	if call {
		if err := dec.Decode(ser, cp.last, &m); err != nil || m.Type != proto.CodeError || string(m.URI) != proto.URINoSuchProcedure {
			b.Fatalf("CALL answered %v %s, want no_such_procedure", m.Type, m.URI)
		}
	}
}

// BenchmarkReroutePick is the pick of the next callee after a refusal
// (pickUntried) in a shared registration of many callees, 16 of which
// the call was offered to already: a callee that answers unavailable
// makes the router pick again, up to 16 times a call.
func BenchmarkReroutePick(b *testing.B) {
	for _, inv := range []proto.Invoke{proto.InvokeRoundRobin, proto.InvokeRandom, proto.InvokeFirst, proto.InvokeLast} {
		for _, n := range []int{100, 100_000} {
			b.Run(fmt.Sprintf("%s/callees=%d", inv, n), func(b *testing.B) {
				l := make([]callee, n)
				for i := range l {
					l[i] = callee{s: &Session{id: uint64(i + 1)}, at: int64(i)}
				}
				reg := &registration{invoke: inv}
				reg.callees.Store(calleesOf(l))
				rr := &reroute{}
				for i := 0; i < 16; i++ { // spread over the list, first and last included
					rr.tried = append(rr.tried, triedCallee{id: l[i*(n-1)/15].s.id})
				}
				s := &Shard{rng: seedRand()}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, _, ok := s.pickUntried(reg, rr, false); !ok {
						b.Fatal("no callee picked")
					}
				}
			})
		}
	}
}
