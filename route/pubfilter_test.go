package route

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
		// 256 KiB: 262,144 one-byte ids, 65,536 four-byte authids. A
		// router that kept an entry per id (a map's 16+ bytes, a slice's
		// 8) would allocate 8 to 16 times the message, past the bound of
		// twice it below (the message's own copy and ~120 KiB of fixed
		// cost fit in it from this size on); 1 MiB lists took 8 to 22 s
		// under -race.
		{"exclude", map[string]any{"exclude": repeat(1, 1<<18)}, append([]*tc{a, b}, others...)},
		{"eligible", map[string]any{"eligible": repeat(a.id, 1<<15)}, []*tc{a}},
		{"exclude_authid", map[string]any{"exclude_authid": repeat("bob", 1<<16), "exclude_authrole": repeat("", 1<<16)}, append([]*tc{b}, others...)},
		{"eligible_authid", map[string]any{"eligible_authid": repeat("bob", 1<<16)}, []*tc{a}},
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
		if n := fl.exclude.len() + fl.eligible.len() + fl.excludeAuthID.len() + fl.excludeAuthRole.len() + fl.eligibleAuthID.len() + fl.eligibleAuthRole.len(); n > 2 {
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

// An event whose PUBLISH carries an exclude list of more than 65,536
// session ids (about 600 KB, well within a message's size) reaches the
// subscribers of every node, as on one node. The envelope's reader used
// to refuse a list longer than 65,536 as malformed (counted in
// BadEnvelopes only), so the event was lost on every other node.
func TestMeshEventLongExcludeList(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	local := es[0].join(proto.MsgPack)
	remote := es[1].join(proto.MsgPack)
	local.subscribe("com.t", nil)
	remote.subscribe("com.t", nil)
	mm.sync()
	pub := es[0].join(proto.MsgPack)
	ids := make([]any, 70000)
	for i := range ids {
		ids[i] = uint64(i + 1) // none of them a subscriber's (ids are random 53-bit)
	}
	req := pub.publish("com.t", map[string]any{"exclude": ids, "acknowledge": true}, []any{"hello"}, nil)
	if m := pub.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED %s", describe(m))
	}
	mm.sync()
	local.expect(proto.CodeEvent)
	select {
	case m := <-remote.peer.in:
		if m.Type != proto.CodeEvent {
			t.Fatalf("remote subscriber got %s", describe(m))
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("the subscriber on the other node got no EVENT (bad envelopes counted there: %d)", es[1].r.MeshStats().BadEnvelopes.Load())
	}
}

// A PUBLISH whose authid and authrole lists hold many distinct entries
// costs its event loop about what reading it costs: the sets are built in
// a few allocations, not one string and one map slot per entry (the bytes
// allocated, the sets' final arrays and those they outgrew, stay within
// 16 times the PUBLISH's). 1.5
// million distinct 6-byte authids (an 11 MB PUBLISH) held the loop 1-3 s
// building a map[string]struct{} (found attacking the broker with huge
// exclude/eligible lists), every other session of the loop waiting, at
// each such PUBLISH. The lists still filter: an excluded authid gets
// nothing, an eligible role's session the event, on this node and on
// another one (the mesh envelope carries the sets).
func TestPublishDistinctListEntriesCheap(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.joinAs(proto.MsgPack, "alice")
	bob, carol := e.joinAs(proto.MsgPack, "bob"), e.joinAs(proto.MsgPack, "carol")
	bob.subscribe("com.t", nil)
	carol.subscribe("com.t", nil)
	const n = 60000
	ids := make([]any, 0, n+1)
	for i := 0; i < n; i++ {
		ids = append(ids, "u"+strconv.FormatInt(int64(i), 36))
	}
	ids = append(ids, "carol")
	roles := make([]any, 0, n/4+1)
	for i := 0; i < n/4; i++ {
		roles = append(roles, "r"+strconv.Itoa(i))
	}
	roles = append(roles, "user")
	msg, err := pub.enc.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(),
		Dict: pub.opts(map[string]any{"exclude_authid": ids, "eligible_authrole": roles}), URI: []byte("com.t"), Args: raw(t, proto.MsgPack, []any{1})})
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	allocs, bytes := ms.Mallocs, ms.TotalAlloc
	start := time.Now()
	pub.sendBytes(msg)
	took := time.Since(start)
	runtime.ReadMemStats(&ms)
	allocs, bytes = ms.Mallocs-allocs, ms.TotalAlloc-bytes
	t.Logf("a PUBLISH of %d bytes, %d distinct list entries: %d allocations, %d bytes, %v", len(msg), n+n/4+2, allocs, bytes, took)
	if allocs > 2000 || bytes > uint64(16*len(msg)) {
		t.Errorf("a PUBLISH of %d bytes with %d distinct list entries made the router allocate %d times, %d bytes (%.1fx); want a few allocations, at most 16x its bytes",
			len(msg), n+n/4+2, allocs, bytes, float64(bytes)/float64(len(msg)))
	}
	if m := bob.expect(proto.CodeEvent); len(argsOf(m)) != 1 {
		t.Fatalf("bob got %s", describe(m))
	}
	carol.quiet()

	// The same sets through the mesh envelope.
	m, err := proto.Decode(proto.MsgPack, msg)
	if err != nil {
		t.Fatal(err)
	}
	p := &publication{id: 1, topic: []byte("com.t"), c: &carry{}, filter: filterOf(&m.Opt)}
	_, got, err := decodeEvent(appendEvent(nil, "realm1", p))
	if err != nil {
		t.Fatal(err)
	}
	f := got.filter
	if f.excludeAuthID.len() != n+1 || f.eligibleAuthRole.len() != n/4+1 || !f.excludeAuthID.has("carol") || !f.excludeAuthID.has("u2bi") ||
		f.excludeAuthID.has("bob") || !f.eligibleAuthRole.has("user") || f.eligibleAuthRole.has("anonymous") || !got.filter.hasEligAuthRole {
		t.Fatalf("the filter from the envelope: %d and %d entries, carol %v, bob %v, user %v",
			f.excludeAuthID.len(), f.eligibleAuthRole.len(), f.excludeAuthID.has("carol"), f.excludeAuthID.has("bob"), f.eligibleAuthRole.has("user"))
	}
}

// A PUBLISH's black and white lists are read into sets only when they can
// matter: the event is delivered on this node, retained, or sent to other
// nodes. Before, filterOf ran before the subscribers were looked up, so a
// PUBLISH with 2,000,000 distinct ids in exclude (10 MB of MsgPack) to a
// topic no one subscribed to held its event loop 1.08 s, every other
// session of the loop waiting; the same bytes as payload took 30 µs. A
// client sending such PUBLISHes at 8 MB/s kept the loop busy all the time.
// The lists still filter where they matter (delivered, retained).
func TestPublishFilterBuiltOnlyWhenItMatters(t *testing.T) {
	var entries atomic.Int64
	var builds atomic.Int32
	testHookFilterOf = func(n, _ int) { entries.Add(int64(n)); builds.Add(1) }
	defer func() { testHookFilterOf = nil }()
	e := newEnv(t, 2, nil)
	pub := e.joinAs(proto.MsgPack, "alice")
	late := e.joinAs(proto.MsgPack, "bob") // excluded by id from the retained event
	const n = 20000
	ids := make([]any, 0, n+1)
	for i := range n {
		ids = append(ids, uint64(i+1)) // none a session's (ids are random 53-bit)
	}
	ids = append(ids, late.id)
	authids := []any{"mallory", "trent"}
	opts := func(o map[string]any) map[string]any {
		o["exclude"], o["eligible_authid"], o["acknowledge"] = ids, authids, true
		return o
	}
	req := pub.publish("com.none", opts(map[string]any{}), []any{1}, nil)
	if m := pub.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED %s", describe(m))
	}
	e.sync()
	if b, got := builds.Load(), entries.Load(); b != 0 || got != 0 {
		t.Fatalf("a PUBLISH to a topic without subscribers built %d filters of %d list entries, want none", b, got)
	}

	// Subscribed: the lists are read, once, and apply.
	sub := e.joinAs(proto.MsgPack, "trent")
	other := e.joinAs(proto.MsgPack, "carol")
	sub.subscribe("com.t", nil)
	other.subscribe("com.t", nil)
	req = pub.publish("com.t", opts(map[string]any{}), []any{1}, nil)
	if m := pub.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED %s", describe(m))
	}
	sub.expect(proto.CodeEvent)
	other.quiet() // not eligible
	if b, got := builds.Load(), entries.Load(); b != 1 || got != n+3 {
		t.Fatalf("a PUBLISH to subscribers built %d filters of %d list entries, want 1 of %d", b, got, n+3)
	}

	// Retained without a subscriber: kept with its lists, which apply to
	// the later subscribers.
	req = pub.publish("com.kept", opts(map[string]any{"retain": true}), []any{1}, nil)
	if m := pub.expect(proto.CodePublished); m.Request != req {
		t.Fatalf("PUBLISHED %s", describe(m))
	}
	if b := builds.Load(); b != 2 {
		t.Fatalf("a retained PUBLISH built %d filters in all, want 2", b)
	}
	late.subscribe("com.kept", map[string]any{"get_retained": true})
	late.quiet() // excluded, by id
	sub.subscribe("com.kept", map[string]any{"get_retained": true})
	if m := sub.expect(proto.CodeEvent); !m.Opt.Bool(proto.KeyRetained, false) {
		t.Fatalf("trent got %s, want the retained event", describe(m))
	}

	// A testament's lists likewise: read when it is published to
	// subscribers, not when no one subscribed to its topic.
	dying := e.joinAs(proto.MsgPack, "dave")
	po := map[string]any{"exclude": ids[:1000], "eligible_authid": authids}
	dying.callMeta("wamp.session.add_testament", []any{"com.none", []any{1}}, map[string]any{"publish_options": po})
	dying.callMeta("wamp.session.add_testament", []any{"com.t", []any{2}}, map[string]any{"publish_options": po})
	dying.drop()
	sub.expect(proto.CodeEvent)
	other.quiet()
	if b, got := builds.Load(), entries.Load(); b != 3 || got != 2*(n+3)+1002 {
		t.Fatalf("after two testaments, one to a topic without subscribers: %d filters of %d list entries in all, want 3 of %d", b, got, 2*(n+3)+1002)
	}
}

func idSetOfList(l []uint64) idSet {
	var set idSet
	for _, id := range l {
		set.add(id)
	}
	return set
}

// A PUBLISH's exclude and eligible ids are read into their sets in steps
// linear in their number. Before, the ids were kept in a slice sorted and
// compacted again each time it doubled: 2,000,000 distinct ids (a 10 MB
// MsgPack PUBLISH) took 1.1-1.9 s to build, nearly all of it sorting, the
// publisher's event loop held meanwhile. The sets still filter, here and through a mesh envelope.
func TestPublishIDListsBuiltInLinearSteps(t *testing.T) {
	var steps, entries atomic.Int64
	testHookFilterOf = func(n, k int) { entries.Add(int64(n)); steps.Add(int64(k)) }
	defer func() { testHookFilterOf = nil }()
	e := newEnv(t, 1, nil)
	pub := e.join(proto.MsgPack)
	in, out, gone := e.join(proto.MsgPack), e.join(proto.MsgPack), e.join(proto.MsgPack)
	for _, s := range []*tc{in, out, gone} {
		s.subscribe("com.t", nil)
	}
	const n = 100000
	rnd := rand.New(rand.NewPCG(1, 2))
	ids := make([]uint64, 0, n+2)
	for range n / 2 {
		ids = append(ids, rnd.Uint64N(proto.MaxID)+1) // none a session's, but by a chance of 1 in 10^10
	}
	ids = append(ids, out.id)
	for i := range n / 2 {
		ids = append(ids, ids[i]) // each twice
	}
	ids = append(ids, gone.id)
	msg, err := pub.enc.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(),
		Dict: pub.opts(map[string]any{"exclude": ids, "eligible": []uint64{in.id, out.id, 0}}), URI: []byte("com.t"), Args: raw(t, proto.MsgPack, []any{1})})
	if err != nil {
		t.Fatal(err)
	}
	pub.sendBytes(msg)
	in.expect(proto.CodeEvent)
	out.quiet()
	gone.quiet()
	if got := entries.Load(); got != n+5 {
		t.Fatalf("the filter read %d entries, want %d", got, n+5)
	}
	if got := steps.Load(); got > 6*n {
		t.Fatalf("building the sets of %d ids (%d distinct) took %d steps (%.1f an id), want at most 6 an id", n+5, n/2+4, got, float64(got)/float64(n+5))
	}
	t.Logf("%d ids, %d steps", n+5, steps.Load())

	// Through the mesh envelope: the same sets.
	m, err := proto.Decode(proto.MsgPack, msg)
	if err != nil {
		t.Fatal(err)
	}
	fl := filterOf(&m.Opt)
	_, got, err := decodeEvent(appendEvent(nil, "realm1", &publication{id: 1, topic: []byte("com.t"), c: &carry{}, filter: fl}))
	if err != nil {
		t.Fatal(err)
	}
	g := got.filter
	if g.exclude.len() != n/2+2 || g.eligible.len() != 2 || !g.hasEligible || !g.exclude.has(out.id) || !g.exclude.has(ids[7]) || g.exclude.has(in.id) ||
		!g.eligible.has(in.id) || g.eligible.has(gone.id) || g.eligible.has(0) {
		t.Fatalf("the sets from the envelope: %d excluded, %d eligible", g.exclude.len(), g.eligible.len())
	}
}
