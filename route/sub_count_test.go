package route

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// mutePeer is a testPeer that, once mute is set, drops what the router
// sends it (SUBSCRIBEDs here), so that the heap measured is the router's.
type mutePeer struct {
	*testPeer
	mute atomic.Bool
}

func (p *mutePeer) Send(b []byte, class Class) error {
	if p.mute.Load() {
		return nil
	}
	return p.testPeer.Send(b, class)
}

// The bytes a subscription counts in limits.subscription_bytes are about
// what it holds: a new subscription of a 10-byte topic held 290-390 bytes
// of heap and was counted 266 (its URI and subOverhead, 256), a wildcard
// one 376-385; a wildcard pattern of 64 components whose trie nodes no
// other pattern shares held 19,267 and was counted 513
// (wildcardIndexCost).
func TestSubscriptionCountsWhatItHolds(t *testing.T) {
	// cmd/edgewamp's least limits.subscription_bytes (1 MiB) must let a
	// quarter hold 58 subscriptions of the longest URI.
	if long := strings.Repeat("a", proto.MaxURILen); 4*58*subCost(proto.MatchExact, long) > 1<<20 {
		t.Fatalf("58 subscriptions of the longest URI count %d bytes, more than a quarter of 1 MiB", 58*subCost(proto.MatchExact, long))
	}
	for _, c := range []struct {
		name  string
		n     int
		uri   func(i int) string
		match string
	}{
		{"exact short", 12000, func(i int) string { return fmt.Sprintf("c.t%07d", i) }, ""},
		{"prefix short", 12000, func(i int) string { return fmt.Sprintf("c.t%07d", i) }, "prefix"},
		{"wildcard short", 1000, func(i int) string { return fmt.Sprintf("c.t%07d.", i) }, "wildcard"},
		// Patterns sharing no trie node: one of 64 components held
		// 19,267 bytes of heap and counted 513 (its index's nodes, ~300
		// bytes a component, counted nowhere).
		{"wildcard 2 components", 1000, func(i int) string { return fmt.Sprintf("w%d.", i) }, "wildcard"},
		{"wildcard 8 components", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".b", 7) }, "wildcard"},
		{"wildcard 64 empty", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".", 63) }, "wildcard"},
		{"wildcard 64 alternating", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat("..b", 31) + "." }, "wildcard"},
		{"wildcard 64 components", 1000, func(i int) string { return fmt.Sprintf("w%d", i) + strings.Repeat(".b", 63) }, "wildcard"},
		{"exact 4KiB", 2000, func(i int) string { return fmt.Sprintf("c.t%07d.", i) + strings.Repeat("a", proto.MaxURILen-11) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 1, func(c *Config) { c.MaxSubscriptions = 1 << 20 })
			sh, x := e.r.Shard(0), e.execs[0]
			tp := &testPeer{ser: proto.JSON, in: make(chan *proto.Message, 4096), sh: sh, exec: x, remote: "test-1"}
			p := &mutePeer{testPeer: tp}
			sub := &tc{e: e, t: t, peer: tp, sh: sh, exec: x}
			x.do(func() { sub.sess = sh.Open(p); tp.sess = sub.sess })
			sub.hello("realm1", allFeatures, nil)
			sub.id = sub.expect(proto.CodeWelcome).ID
			var o proto.Raw
			if c.match != "" {
				o = sub.opts(map[string]any{"match": c.match})
			} else {
				o = sub.opts(nil)
			}
			msgs := make([][]byte, 0, c.n)
			for i := range c.n {
				m := &proto.Message{Type: proto.CodeSubscribe, Request: sub.nextReq(), Dict: o, URI: []byte(c.uri(i))}
				r, err := sub.enc.Append(nil, tp.ser, m)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, r)
			}
			p.mute.Store(true)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			sub.exec.do(func() {
				for _, r := range msgs {
					sub.sh.Receive(sub.sess, r)
				}
			})
			runtime.GC()
			runtime.ReadMemStats(&m1)
			runtime.KeepAlive(msgs) // in both readings
			var subs int
			x.do(func() { subs = len(sub.sess.subs) })
			if subs != c.n {
				t.Fatalf("%d subscriptions, want %d", subs, c.n)
			}
			st := e.r.Stats()
			counted := st.SubscriptionBytes / int64(c.n)
			held := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(c.n)
			t.Logf("%d bytes of heap per new subscription, counted %d", held, counted)
			if held > counted*5/4 {
				t.Fatalf("a new subscription holds %d bytes of heap and is counted %d in subscription_bytes", held, counted)
			}
		})
	}
}
