package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// BenchmarkLookupUnderChurn: a victim's PUBLISH (or CALL → YIELD) on one
// shard, the shared event loop, while an attacker on the same shard churns
// a SUBSCRIBE/UNSUBSCRIBE (REGISTER/UNREGISTER) pair per victim operation
// on a URI unrelated to the victim's. The realm holds the realm's bound of
// worst-shape wildcard subscriptions and registrations (the patterns of
// BenchmarkWildcardWorstCase, 12 components of "a" or a wildcard then "z"),
// so that a victim lookup that misses the shard's cache walks 4,095 paths
// (now those maxWildcardWalk lets in).
// One op is the attacker's pair plus the victim's operation; misses/op
// counts the shard's lookups that went to the tables: the victim's, and
// those of the meta events that announce the attacker's changes.
// churn=none is the victim's operation alone.
func BenchmarkLookupUnderChurn(b *testing.B) {
	for _, victim := range []string{"publish", "call"} {
		for _, churn := range []string{"none", "sub-exact", "reg-exact", "sub-prefix", "sub-wildcard"} {
			b.Run("victim="+victim+"/churn="+churn, func(b *testing.B) { benchLookupUnderChurn(b, victim == "call", churn) })
		}
	}
}

func benchLookupUnderChurn(b *testing.B, call bool, churn string) {
	const ser = proto.MsgPack
	const k = 12 // 2^12 = 4096, the default realm bound
	r := benchRouter(b, 1)
	sh := r.Shard(0)
	rm := r.Realm("realm1")
	var dec proto.Decoder
	var m proto.Message
	expect := func(p *benchPeer, want proto.Code) *proto.Message {
		if err := dec.Decode(ser, p.last, &m); err != nil || m.Type != want {
			b.Fatalf("got %v (%v) %s, want %v", m.Type, err, argsOf(&m), want)
		}
		return &m
	}
	wildOpts, _ := proto.EncodeValue(ser, map[string]any{"match": "wildcard"})
	empty, _ := proto.EncodeValue(ser, map[string]any{})
	// The victim: a.a.….a.y, which every pattern's first k components
	// match; its callee's registration is the all-wildcard pattern ending
	// in "y", which a CALL's depth-first walk reaches last (made before
	// the others: maxWildcardWalk refuses them past its bound, not it).
	uri := []byte(strings.Repeat("a.", k) + "y")
	victim, vp := benchJoin(b, sh, ser)
	callee, cp := benchJoin(b, sh, ser)
	if call {
		sh.Receive(callee, encode(b, ser, &proto.Message{Type: proto.CodeRegister, Request: 1, Dict: wildOpts, URI: []byte(strings.Repeat(".", k) + "y")}))
		expect(cp, proto.CodeRegistered)
	} else {
		sh.Receive(callee, encode(b, ser, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: empty, URI: uri}))
		expect(cp, proto.CodeSubscribed)
	}
	// 4,095 patterns in each table: all shapes but the all-wildcard one,
	// which leaves room for one more pattern (the victim's registration,
	// the attacker's wildcard subscription).
	var ss *Session
	var sp *benchPeer
	for _, code := range []proto.Code{proto.CodeSubscribe, proto.CodeRegister} {
		ok := proto.CodeSubscribed
		if code == proto.CodeRegister {
			ok = proto.CodeRegistered
		}
		for i := 0; i < 1<<k-1; i++ {
			if i%1024 == 0 {
				ss, sp = benchJoin(b, sh, ser)
			}
			comps := make([]string, k+1)
			for j := 0; j < k; j++ {
				if i&(1<<j) == 0 {
					comps[j] = "a"
				}
			}
			comps[k] = "z"
			sh.Receive(ss, encode(b, ser, &proto.Message{Type: code, Request: uint64(i + 1), Dict: wildOpts, URI: []byte(strings.Join(comps, "."))}))
			// Those past maxWildcardWalk are refused: the walk stays within it.
			if dec.Decode(ser, sp.last, &m) != nil || (m.Type != ok && string(m.URI) != proto.URIUnavailable) {
				b.Fatalf("got %v %s, want %v or %s", m.Type, argsOf(&m), ok, proto.URIUnavailable)
			}
		}
	}
	args, _ := proto.EncodeValue(ser, []any{"0123456789012345678901234567890123456789012345678901"})
	pub := encode(b, ser, &proto.Message{Type: proto.CodePublish, Request: 1, Dict: empty, URI: uri, Args: args})

	attacker, ap := benchJoin(b, sh, ser)
	var on, off proto.Message
	var onOK, offOK proto.Code
	switch churn {
	case "sub-exact", "sub-prefix", "sub-wildcard":
		o, t := empty, "com.attack.t"
		switch churn {
		case "sub-prefix":
			o, _ = proto.EncodeValue(ser, map[string]any{"match": "prefix"})
			t = "com.attack."
		case "sub-wildcard":
			o, t = wildOpts, "com..t"
		}
		on = proto.Message{Type: proto.CodeSubscribe, Dict: o, URI: []byte(t)}
		off = proto.Message{Type: proto.CodeUnsubscribe}
		onOK, offOK = proto.CodeSubscribed, proto.CodeUnsubscribed
	case "reg-exact":
		on = proto.Message{Type: proto.CodeRegister, Dict: empty, URI: []byte("com.attack.p")}
		off = proto.Message{Type: proto.CodeUnregister}
		onOK, offOK = proto.CodeRegistered, proto.CodeUnregistered
	}
	var enc proto.Encoder
	var buf []byte
	req := uint64(0)
	victimOp := func() {
		req++
		if call {
			buf = callMsgOpts(buf[:0], ser, req, empty, string(uri), args)
			sh.Receive(victim, buf)
			expect(cp, proto.CodeInvocation)
			buf = yieldMsg(buf[:0], ser, m.Request, args)
			sh.Receive(callee, buf)
			expect(vp, proto.CodeResult)
		} else {
			vp.n = 0
			cp.n = 0
			sh.Receive(victim, pub)
			if cp.n != 1 {
				b.Fatalf("the victim's subscriber got %d events, want 1", cp.n)
			}
		}
	}
	victimOp() // warm the cache
	misses0 := rm.l1[0].misses
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if onOK != 0 {
			req++
			on.Request = req
			buf, _ = enc.Append(buf[:0], ser, &on)
			sh.Receive(attacker, buf)
			off.ID = expect(ap, onOK).ID
			req++
			off.Request = req
			buf, _ = enc.Append(buf[:0], ser, &off)
			sh.Receive(attacker, buf)
			expect(ap, offOK)
		}
		victimOp()
	}
	b.StopTimer()
	b.ReportMetric(float64(rm.l1[0].misses-misses0)/float64(b.N), "misses/op")
}
