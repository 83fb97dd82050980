package route

import (
	"runtime"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A PUBLISH's black and white lists cost the router about what they
// take on the wire: a list that repeats one entry is one entry, not a
// slice of millions that every subscriber is compared with.
func TestPublishFilterListsCostTheirDistinctEntries(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.joinAs(proto.MsgPack, "alice")
	a, b := e.joinAs(proto.MsgPack, "bob"), e.joinAs(proto.MsgPack, "carol")
	var others []*tc
	for i := 0; i < 50; i++ {
		others = append(others, e.joinAs(proto.MsgPack, "dave"))
	}
	for _, s := range append([]*tc{a, b}, others...) {
		s.subscribe("com.t", nil)
	}
	repeat := func(v any, n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = v
		}
		return l
	}
	for _, tt := range []struct {
		name string
		opts map[string]any
		want []*tc
	}{
		// 1 MiB: a million one-byte ids, 256k four-byte authids.
		{"exclude", map[string]any{"exclude": repeat(1, 1<<20)}, append([]*tc{a, b}, others...)},
		{"eligible", map[string]any{"eligible": repeat(a.id, 1<<17)}, []*tc{a}},
		{"exclude_authid", map[string]any{"exclude_authid": repeat("bob", 1<<18), "exclude_authrole": repeat("", 1<<18)}, append([]*tc{b}, others...)},
		{"eligible_authid", map[string]any{"eligible_authid": repeat("bob", 1<<18)}, []*tc{a}},
	} {
		msg, err := pub.enc.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: pub.opts(tt.opts), URI: []byte("com.t"), Args: raw(t, proto.MsgPack, []any{1})})
		if err != nil {
			t.Fatal(err)
		}
		m, err := proto.Decode(proto.MsgPack, msg)
		if err != nil {
			t.Fatal(err)
		}
		fl := filterOf(&m.Opt)
		if n := len(fl.exclude) + len(fl.eligible) + len(fl.excludeAuthID) + len(fl.excludeAuthRole) + len(fl.eligibleAuthID) + len(fl.eligibleAuthRole); n > 2 {
			t.Errorf("%s: the filter holds %d entries, want the distinct ones (at most 2)", tt.name, n)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		pub.sendBytes(msg)
		runtime.ReadMemStats(&ms)
		if got := ms.TotalAlloc - before; got > uint64(2*len(msg)) {
			t.Errorf("%s: a PUBLISH of %d bytes made the router allocate %d bytes (%.0fx)", tt.name, len(msg), got, float64(got)/float64(len(msg)))
		}
		e.sync()
		for _, s := range append([]*tc{a, b}, others...) {
			got, exp := len(s.peer.in) > 0, false
			for _, w := range tt.want {
				exp = exp || w == s
			}
			if got != exp {
				t.Fatalf("%s: session %d received=%v, want %v", tt.name, s.id, got, exp)
			}
			if got {
				s.expect(proto.CodeEvent)
			}
		}
	}
}
