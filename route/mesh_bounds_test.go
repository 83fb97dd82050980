package route

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// What another node can make this one do with what it sends: envelopes
// that do not decode are counted and dropped, never a panic, never
// anything held.

// meshSamples returns one valid envelope of each kind, as node A's router
// produces them for node B.
func meshSamples(t testing.TB) [][]byte {
	var out [][]byte
	p := &publication{id: 7, topic: []byte("com.t"), c: &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`[1,"x"]`)}, kwargs: proto.Raw{Ser: proto.JSON, B: []byte(`{"a":1}`)}},
		disclose: true, publisher: &Session{id: 5, authID: "u", authRole: "r"},
		filter: &pubFilter{exclude: idSetOfList([]uint64{1, 2}), eligibleAuthID: strSetOf([]string{"x"}), hasEligAuthID: true}}
	p.c.ppt[0] = []byte("scheme")
	out = append(out, appendEvent(nil, "realm1", p))
	w := wbuf(nil)
	w.byte1(envCall)
	w.uv(3)
	w.uv(0)
	w.uv(ccDisclose | ccRecvProg)
	w.uv(1000)
	w.str("realm1")
	w.byte1(byte(proto.MatchExact))
	w.str("com.p")
	w.str("com.p")
	w.uv(5)
	w.str("u")
	w.str("r")
	w.payload(&carry{args: proto.Raw{Ser: proto.MsgPack, B: []byte{0x91, 0x01}}})
	w.uv(0) // no callee excluded
	out = append(out, []byte(w))
	bounce := append([]byte(nil), w...)
	bounce[0] = envBounce
	out = append(out, bounce)
	out = append(out, appendResult(nil, 0, 3, rsError, 0, "com.err", "msg", &carry{args: proto.Raw{Ser: proto.CBOR, B: []byte{0x81, 0x01}}}))
	out = append(out, appendChunk(nil, 3, true, &carry{}))
	out = append(out, appendInterrupt(nil, 3, proto.CancelKill, "wamp.error.canceled"))
	q, err := encodeQuery("realm1", "wamp.session.count", []any{[]any{"anonymous"}}, map[string]any{"k": 1})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, q)
	return out
}

func TestMeshEnvelopesFromAnotherNode(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	callee := es[0].join(proto.JSON)
	callee.register("com.p", nil)
	callee.subscribe("com.t", nil)
	mm.sync()
	r := es[0].r
	samples := meshSamples(t)
	// Valid envelopes from an unknown node do what they say (the callee
	// gets an INVOCATION; its result goes nowhere harmful).
	for _, env := range samples {
		if env[0] == envQuery {
			done := make(chan []byte, 1)
			r.MeshQuery(append([]byte(nil), env...), time.Time{}, func(b []byte) { done <- b })
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("a query was never answered")
			}
			continue
		}
		r.MeshDeliver(99, append([]byte(nil), env...))
	}
	mm.sync()
	for {
		select {
		case <-callee.peer.in:
			continue
		default:
		}
		break
	}
	// Every prefix and random corruptions of each: counted, dropped.
	rng := rand.New(rand.NewPCG(1, 2))
	bad := r.MeshStats().BadEnvelopes.Load()
	for _, env := range samples {
		for n := 0; n < len(env); n++ {
			b := append([]byte(nil), env[:n]...)
			if env[0] == envQuery {
				r.MeshQuery(b, time.Time{}, func([]byte) {})
			} else {
				r.MeshDeliver(99, b)
			}
		}
		for k := 0; k < 200; k++ {
			b := append([]byte(nil), env...)
			for j := 0; j < 1+rng.IntN(4); j++ {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			if env[0] == envQuery {
				r.MeshQuery(b, time.Time{}, func([]byte) {})
			} else {
				r.MeshDeliver(99, b)
			}
		}
	}
	mm.sync()
	if r.MeshStats().BadEnvelopes.Load() == bad {
		t.Fatal("no malformed envelope was counted")
	}
	// The node still works, and holds nothing for node 99 once it is gone.
	r.MeshNodeDown(99)
	mm.sync()
	for _, x := range es[0].execs {
		x.do(func() {})
	}
	if n := r.MeshPending(); n != 0 {
		t.Fatalf("%d calls or invocations held after the garbage", n)
	}
	caller := es[1].join(proto.JSON)
	if n := r.ms.invs.Load(); n != 0 {
		t.Fatalf("%d invocations of the gone node still counted", n)
	}
	for len(callee.peer.in) > 0 { // what the garbage made it receive
		<-callee.peer.in
	}
	req := caller.call("com.p", nil, []any{1}, nil)
	inv := callee.expect(proto.CodeInvocation)
	callee.yield(inv.Request, nil, []any{"ok"})
	for {
		m := caller.recv()
		if m.Type == proto.CodeResult && m.Request == req {
			break
		}
	}
}

// FuzzMeshEnvelope: whatever another node sends, MeshDeliver and
// MeshQuery neither panic nor hold anything (the seeds run in make test;
// go test -fuzz FuzzMeshEnvelope ./route explores further).
func FuzzMeshEnvelope(f *testing.F) {
	for _, s := range meshSamples(f) {
		f.Add(s)
	}
	r, err := New(Config{Realms: []RealmConfig{{Name: "realm1"}}, manualTimers: true})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	x := newGoExec()
	defer x.stop()
	r.Shard(0).Start(x)
	if err := r.AttachMesh(nopMesh{}, "fuzz", 1); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r.MeshDeliver(1, append([]byte(nil), b...))
		r.MeshQuery(append([]byte(nil), b...), time.Time{}, func([]byte) {})
	})
}

type nopMesh struct{}

func (nopMesh) Subscribe(string, proto.Match, string)                  {}
func (nopMesh) Unsubscribe(string, proto.Match, string)                {}
func (nopMesh) Registered(string, MeshReg)                             {}
func (nopMesh) Claim(_ string, _ proto.Match, _ string, d func(error)) { d(nil) }
func (nopMesh) Release(string, proto.Match, string)                    {}
func (nopMesh) Released(done func())                                   { done() }
func (nopMesh) Publish(string, []byte, []byte) error                   { return nil }
func (nopMesh) Send(MeshNode, []byte) error                            { return nil }
func (nopMesh) Gather(_ []byte, d func([][]byte, []string)) error      { d(nil, nil); return nil }

// Events from another node wait for a shard that does not keep up (its
// loop busy, here stalled) up to maxMeshBacklog bytes; beyond, they are
// dropped and counted, not queued without bound. What was queued is
// delivered once the shard runs again.
func TestMeshEventBacklogBounded(t *testing.T) {
	mm, es := newMemMesh(t, 1, 1, nil)
	sub := es[0].join(proto.JSON)
	sub.subscribe("com.t", nil)
	mm.sync()
	r := es[0].r
	unblock := stallExec(t, es[0], 0)
	const size = 256 << 10
	payload := `["` + strings.Repeat("x", size) + `"]`
	const sent = 3 * maxMeshBacklog / size
	for i := 0; i < sent; i++ {
		p := &publication{id: uint64(i + 1), topic: []byte("com.t"), c: &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(payload)}}}
		r.MeshDeliver(99, appendEvent(nil, "realm1", p))
	}
	dropped := int(r.MeshStats().EventsOverflow.Load())
	queued := sent - dropped
	if b := r.Shard(0).meshBacklog.Load(); b > maxMeshBacklog {
		t.Fatalf("%d bytes of events queued for the stalled shard, bound %d", b, maxMeshBacklog)
	}
	if dropped == 0 || queued < maxMeshBacklog/(size+64)-1 {
		t.Fatalf("%d of %d events dropped: want the bound (%d bytes) filled, the rest dropped", dropped, sent, maxMeshBacklog)
	}
	unblock()
	for i := 0; i < queued; i++ {
		if m := sub.recv(); m.Type != proto.CodeEvent {
			t.Fatalf("got %v, want EVENT %d of %d", m.Type, i+1, queued)
		}
	}
	mm.sync()
	if b := r.Shard(0).meshBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
	// Room again: the next event is delivered.
	p := &publication{id: 1 << 20, topic: []byte("com.t"), c: &carry{args: proto.Raw{Ser: proto.JSON, B: []byte(`[1]`)}}}
	r.MeshDeliver(99, appendEvent(nil, "realm1", p))
	if m := sub.recv(); m.Type != proto.CodeEvent {
		t.Fatalf("got %v after the backlog drained, want EVENT", m.Type)
	}
	if n := r.MeshStats().EventsOverflow.Load(); int(n) != dropped {
		t.Fatalf("%d more dropped after the backlog drained", int(n)-dropped)
	}
}

// The mesh's side of TestFailedChunkInterruptsCallee: a later chunk the
// callee on another node cannot take fails the call at its caller, and
// the callee is interrupted (the chunk used to be dropped silently, the
// caller and callee both left waiting).
func TestMeshFailedChunkInterruptsCallee(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.JSON), es[0].join(proto.JSON)
	callee.register("com.upload", nil)
	mm.sync()
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 1)
	inv := callee.expect(proto.CodeInvocation)
	callee.peer.maxLen.Store(200)
	caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{"progress": true}),
		URI: []byte("com.upload"), Args: raw(t, proto.JSON, []any{strings.Repeat("x", 400)})})
	m := callee.expect(proto.CodeInterrupt)
	if m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
		t.Fatalf("INTERRUPT for %d mode %q, want %d killnowait", m.Request, m.Opt.String(proto.KeyMode), inv.Request)
	}
	caller.expectError(proto.CodeCall, req, proto.URIPayloadSizeExceeded)
	mm.sync()
	if n := es[1].r.MeshPending(); n != 0 {
		t.Fatalf("%d invocations still held on the callee's node", n)
	}
}

// Calls from other nodes wait for the callee's shard in its backlog of
// calls, as calls from this node's other shards do: past maxCallBacklog
// bytes they are refused back to the caller's node with
// wamp.error.unavailable. Before, a stalled callee loop queued every call
// other nodes sent it (up to mesh.max_invocations, 65,536, of up to
// 16 MiB each).
func TestMeshCallsForStalledShardBounded(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.MsgPack), es[0].join(proto.MsgPack)
	callee.register("com.big", nil)
	mm.sync()
	unblock := stallExec(t, es[1], 0)
	const size, calls = 1 << 20, 3 * maxCallBacklog / (1 << 20)
	payload := []any{strings.Repeat("x", size)}
	reqs := map[uint64]bool{}
	for range calls {
		reqs[caller.call("com.big", nil, payload, nil)] = true
	}
	mm.syncExcept(1)
	refused := 0
	for {
		var m *proto.Message
		select {
		case m = <-caller.peer.in:
		case <-time.After(200 * time.Millisecond):
		}
		if m == nil {
			break
		}
		if m.Type != proto.CodeError || string(m.URI) != proto.URIUnavailable || !reqs[m.Request] {
			t.Fatalf("got %v %s while the callee's loop is stalled, want ERROR %s", m.Type, m.URI, proto.URIUnavailable)
		}
		delete(reqs, m.Request)
		refused++
	}
	if b := es[1].r.Shard(0).callBacklog.Load(); b > maxCallBacklog+size+1024 {
		t.Fatalf("%d bytes of calls queued for the stalled shard, bound %d", b, maxCallBacklog)
	}
	if refused == 0 || len(reqs) < maxCallBacklog/(size+1024)-1 {
		t.Fatalf("%d of %d calls refused, %d queued: want the bound filled, the rest refused", refused, calls, len(reqs))
	}
	// The queued ones reach the callee once its loop runs, and are answered.
	unblock()
	for range len(reqs) {
		inv := callee.expect(proto.CodeInvocation)
		callee.yield(inv.Request, nil, []any{1})
	}
	for range len(reqs) {
		if m := caller.expect(proto.CodeResult); !reqs[m.Request] {
			t.Fatalf("RESULT for request %d", m.Request)
		}
	}
	mm.sync()
	if b := es[1].r.Shard(0).callBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
}

// Results from other nodes wait for the caller's shard in its backlog of
// calls: past the bound the caller gets wamp.error.unavailable in place
// of the result.
func TestMeshResultsForStalledShardBounded(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.MsgPack), es[0].join(proto.MsgPack)
	callee.register("com.big", nil)
	mm.sync()
	const size, calls = 1 << 20, 3 * maxCallBacklog / (1 << 20)
	var invs []uint64
	for range calls {
		caller.call("com.big", nil, []any{1}, nil)
	}
	for range calls {
		invs = append(invs, callee.expect(proto.CodeInvocation).Request)
	}
	unblock := stallExec(t, es[0], 0)
	payload := []any{strings.Repeat("x", size)}
	for _, inv := range invs {
		callee.yield(inv, nil, payload)
	}
	mm.syncExcept(0)
	if b := es[0].r.Shard(0).callBacklog.Load(); b > maxCallBacklog+size+1024 {
		t.Fatalf("%d bytes of results queued for the stalled shard, bound %d", b, maxCallBacklog)
	}
	unblock()
	results, refused := 0, 0
	for range calls {
		switch m := caller.recv(); {
		case m.Type == proto.CodeResult:
			results++
		case m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable:
			refused++
		default:
			t.Fatalf("got %v %s", m.Type, m.URI)
		}
	}
	if refused == 0 || results < maxCallBacklog/(size+1024)-1 {
		t.Fatalf("%d results and %d refusals: want the bound filled, the rest refused", results, refused)
	}
	mm.sync()
	if b := es[0].r.Shard(0).callBacklog.Load(); b != 0 {
		t.Fatalf("%d bytes still counted after the shard ran", b)
	}
}

// A streaming callee on another node whose caller's shard is too busy to
// take its progressive results: the caller gets wamp.error.unavailable,
// and the callee is told the call is over (INTERRUPT killnowait), as on
// one node (callerBacklogged). Before, the callee's node kept the
// invocation (one of MaxMeshInvocations' slots, for good) and the callee
// streamed on into a node that dropped every result.
func TestMeshStreamForStalledCallerInterrupted(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.JSON), es[0].join(proto.JSON)
	callee.register("com.stream", nil)
	mm.sync()
	req := caller.call("com.stream", map[string]any{"receive_progress": true}, nil, nil)
	inv := callee.expect(proto.CodeInvocation)
	unblock := stallExec(t, es[0], 0)
	big := []any{strings.Repeat("x", 1<<20)}
	for range 40 { // past maxCallBacklog
		callee.yield(inv.Request, map[string]any{"progress": true}, big)
	}
	mm.syncExcept(0)
	unblock()
	results := 0
	for {
		m := caller.recv()
		if m.Type == proto.CodeResult {
			results++
			continue
		}
		if m.Type != proto.CodeError || m.Request != req || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("caller got %s", describe(m))
		}
		break
	}
	if m := callee.expect(proto.CodeInterrupt); m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
		t.Fatalf("callee got %s, want INTERRUPT killnowait for %d", describe(m), inv.Request)
	}
	callee.yield(inv.Request, map[string]any{"progress": true}, []any{"more"}) // after the INTERRUPT: dropped
	mm.sync()
	caller.quiet()
	if v := es[1].r.ms.invs.Load(); v != 0 {
		t.Errorf("the callee's node still counts %d invocations from other nodes", v)
	}
	t.Logf("%d progressive results, then ERROR unavailable", results)
	assertNothingPending(t, mm)
}

// syncExcept is sync for a mesh whose node skip has a stalled shard: its
// dispatcher is waited for, its shards are not.
func (mm *memMesh) syncExcept(skip int) {
	for k := 0; k < 4; k++ {
		for i, n := range mm.nodes {
			done := make(chan struct{})
			n.q <- func() { close(done) }
			<-done
			if i != skip {
				n.e.sync()
			}
		}
	}
}

// mailboxChunkBytes returns the bytes of chunks from other nodes waiting
// in sh's mailbox.
func mailboxChunkBytes(sh *Shard) int64 {
	sh.mbMu.Lock()
	defer sh.mbMu.Unlock()
	var n int64
	for _, t := range sh.mb {
		if t.kind == tMeshChunk && t.c != nil {
			n += int64(len(t.c.args.B) + len(t.c.kwargs.B))
		}
	}
	return n
}

// Chunks of a progressive call invocation from another node wait for the
// callee's shard in a bounded backlog, as chunks from this node's other
// shards do: past it the call fails at its caller with
// wamp.error.unavailable and the callee is interrupted. Before, they were
// posted to every shard of the callee's node uncounted: a caller on
// another node streaming chunks to a callee whose loop did not keep up
// (converting CBOR to JSON, or stalled) made that node queue all of them.
func TestMeshChunksForStalledShardBounded(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee, caller := es[1].join(proto.MsgPack), es[0].join(proto.MsgPack)
	callee.register("com.upload", nil)
	mm.sync()
	req := caller.nextReq()
	caller.callChunk(req, "com.upload", true, 1)
	inv := callee.expect(proto.CodeInvocation)
	unblock := stallExec(t, es[1], 0)
	const size, chunks = 1 << 20, 3 * maxCallBacklog / (1 << 20)
	payload := raw(t, proto.MsgPack, []any{strings.Repeat("x", size)})
	for range chunks {
		caller.send(&proto.Message{Type: proto.CodeCall, Request: req, Dict: caller.opts(map[string]any{"progress": true}),
			URI: []byte("com.upload"), Args: payload})
	}
	mm.syncExcept(1)
	if b := mailboxChunkBytes(es[1].r.Shard(0)); b > maxCallBacklog+size+1024 {
		t.Fatalf("%d bytes of chunks queued for the stalled shard, bound %d", b, maxCallBacklog)
	}
	unblock()
	// What was queued reaches the callee, then the interrupt.
	for {
		m := callee.recv()
		if m.Type == proto.CodeInterrupt {
			if m.Request != inv.Request || m.Opt.String(proto.KeyMode) != "killnowait" {
				t.Fatalf("INTERRUPT for %d mode %q, want %d killnowait", m.Request, m.Opt.String(proto.KeyMode), inv.Request)
			}
			break
		}
		if m.Type != proto.CodeInvocation || m.Request != inv.Request {
			t.Fatalf("got %v for %d, want the invocation's chunks then INTERRUPT", m.Type, m.Request)
		}
	}
	caller.expectError(proto.CodeCall, req, proto.URIUnavailable)
	mm.sync()
	if n := es[1].r.MeshPending(); n != 0 {
		t.Fatalf("%d invocations still held on the callee's node", n)
	}
	if n := meshChunkBacklog(es[1].r); n != 0 {
		t.Fatalf("%d bytes of chunks still counted after the shard ran", n)
	}
}

// meshChunkBacklog returns the bytes of chunks from other nodes counted as
// waiting for r's shards.
func meshChunkBacklog(r *Router) int64 { return r.ms.chunkBytes.Load() }

// stallExec keeps shard i of e busy until the returned function is called
// (or the test ends: the cleanup runs before the harness's, which waits
// for the executor).
func stallExec(t *testing.T, e *env, i int) (unblock func()) {
	release := make(chan struct{})
	unblock = sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	e.execs[i].Execute(func() { <-release })
	return unblock
}
