package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// One caller's flood of calls to a callee that does not keep up took the
// callee's whole outbound queue, and every other caller of the callee was
// refused for as long as the flood went on: the router sends each
// INVOCATION as its CALL arrives, and the transport refuses the next one
// (wamp.error.unavailable, "the callee is not reading fast enough") once
// the callee's backlog is past its high-water mark, whoever the caller.
// Now the upper half of the queue is kept for the callers holding no more
// than their share of the callee's invocations (calleeshare.go). Here the
// callee's queue takes 64 messages; caller A sends 200 calls, then caller
// B one.
func TestOneCallerDoesNotStarveOthers(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	callee.register("com.svc", nil)
	callee.peer.backlog.Store(64)
	a := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	b := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	for i := 0; i < 200; i++ {
		a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: a.nextReq(), Dict: a.opts(nil), URI: []byte("com.svc")})
	}
	e.sync()
	refused, why := 0, ""
	for len(a.peer.in) > 0 {
		m := <-a.peer.in
		if m.Type != proto.CodeError || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("caller A got %s, want only ERRORs %s", describe(m), proto.URIUnavailable)
		}
		if args := argsOf(m); len(args) != 1 || args[0] != msgCalleeShare {
			why = fmt.Sprint(args)
		}
		refused++
	}
	// Alone, A keeps the callee's queue half full: a callee that reads
	// always has its calls to read.
	held := len(callee.peer.in)
	if held < 32 || held+refused != 200 {
		t.Fatalf("the callee holds %d of A's invocations and %d of A's calls were refused, want at least 32 held and the rest refused", held, refused)
	}
	req := b.call("com.svc", map[string]any{"disclose_me": true}, nil, nil)
	e.sync()
	select {
	case m := <-b.peer.in:
		t.Fatalf("caller B's call %d got %v %s %s while caller A holds the callee's %d queued invocations (%d of A's 200 calls refused)", req, m.Type, m.URI, argsOf(m), len(callee.peer.in), refused)
	default:
	}
	if why != "" {
		t.Fatalf("caller A's ERROR says %s, want %q", why, msgCalleeShare)
	}
	var invs []*proto.Message
	fromB := 0
	for len(callee.peer.in) > 0 {
		m := <-callee.peer.in
		if m.Type != proto.CodeInvocation {
			t.Fatalf("the callee got %s", describe(m))
		}
		if m.Opt.Uint(proto.KeyCaller) == b.id {
			fromB++
		}
		invs = append(invs, m)
	}
	if fromB != 1 {
		t.Fatalf("caller B's INVOCATION reached the callee %d times, want once", fromB)
	}
	if n := e.r.Stats().CallsRefusedShare; n != uint64(refused) {
		t.Fatalf("refusals counted: %d, want %d", n, refused)
	}
	t.Logf("the callee held %d of A's invocations, %d of A's calls refused for its share; B's call reached it", held, refused)

	// Answered, the invocations leave no count behind.
	for _, m := range invs {
		callee.yield(m.Request, nil, nil)
	}
	e.sync()
	b.expect(proto.CodeResult)
	for range held {
		a.expect(proto.CodeResult)
	}
	var left int
	var share map[uint64]int32
	e.execs[1].do(func() { left, share = len(callee.sess.invs), callee.sess.share })
	if left != 0 || share != nil {
		t.Fatalf("after every invocation was answered the callee keeps %d invocations and a count by caller %v", left, share)
	}
}

// A call refused for its caller's share of a callee that is behind goes
// on to another callee of a shared registration, as for a callee's
// wamp.error.unavailable (call re-routing), and reaches the caller only
// when no other callee is left.
func TestCalleeShareReroutes(t *testing.T) {
	e := newEnv(t, 2, nil)
	slow := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	slow.register("com.rr", map[string]any{"invoke": "roundrobin"})
	slow.peer.backlog.Store(16)
	fast := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	fast.register("com.rr", map[string]any{"invoke": "roundrobin"})
	a := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	for i := 0; i < 100; i++ {
		a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: a.nextReq(), Dict: a.opts(nil), URI: []byte("com.rr")})
	}
	e.sync()
	if n := len(a.peer.in); n != 0 {
		t.Fatalf("caller A got %d answers (first %s), want none: the slow callee's refusals go to the other callee", n, describe(<-a.peer.in))
	}
	ns, nf := len(slow.peer.in), len(fast.peer.in)
	st := e.r.Stats()
	// How many of the round robin's picks fall on the slow callee depends
	// on how the reroutes, which move the rotation on, interleave with the
	// new calls across the two shards: not asserted (it was 50-ns, and
	// CI once saw 51-ns).
	if ns+nf != 100 || ns > 16 || st.CallsRefusedShare == 0 || st.CallsRerouted != st.CallsRefusedShare {
		t.Fatalf("slow callee %d invocations, fast %d; %d refused for the share, %d rerouted; want 100 in all, at most 16 to the slow one, some refused for the share, every refusal rerouted",
			ns, nf, st.CallsRefusedShare, st.CallsRerouted)
	}
	t.Logf("slow callee %d invocations, fast %d; %d refused for the share and rerouted", ns, nf, st.CallsRefusedShare)
}

// Only a call's first INVOCATION is checked: a further chunk of a
// progressive call invocation reaches its callee even while the caller
// holds more than its share, within the callee's mark.
func TestCalleeShareProgressiveChunks(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	callee.register("com.stream", nil)
	callee.peer.backlog.Store(16)
	a := e.joinRealmOn(0, proto.JSON, "realm1", allFeatures)
	stream := a.nextReq()
	a.callChunk(stream, "com.stream", true, 1)
	for i := 0; i < 30; i++ {
		a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: a.nextReq(), Dict: a.opts(nil), URI: []byte("com.stream")})
	}
	e.sync()
	refused := 0
	for len(a.peer.in) > 0 {
		if m := <-a.peer.in; m.Type == proto.CodeError && len(argsOf(m)) == 1 && argsOf(m)[0] == msgCalleeShare {
			refused++
		}
	}
	held := len(callee.peer.in)
	if refused == 0 || held > 12 {
		t.Fatalf("%d calls refused for A's share, the callee holds %d: the check did not apply", refused, held)
	}
	a.callChunk(stream, "com.stream", false, 2)
	e.sync()
	var first uint64
	for len(callee.peer.in) > 0 {
		m := <-callee.peer.in
		if first == 0 {
			first = m.Request
		}
		if m.Request == first && len(argsOf(m)) == 1 && argsOf(m)[0] == int64(2) {
			if m.Opt.Bool(proto.KeyProgress, false) {
				t.Fatal("the final chunk came with progress")
			}
			return
		}
	}
	t.Fatalf("the final chunk of A's progressive call did not reach the callee (A's answers: %d)", len(a.peer.in))
}

// On a mesh a remote caller is one caller per session: a flood from a
// session on another node does not starve another session of that node,
// and the refusal reaches the flooding caller as on one node.
func TestMeshCalleeShare(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	callee := es[1].join(proto.JSON)
	callee.register("com.svc", nil)
	callee.peer.backlog.Store(32)
	mm.sync()
	a := es[0].join(proto.JSON)
	for i := 0; i < 100; i++ {
		a.sendAsync(&proto.Message{Type: proto.CodeCall, Request: a.nextReq(), Dict: a.opts(nil), URI: []byte("com.svc")})
	}
	mm.sync()
	refused, shared := 0, 0
	for len(a.peer.in) > 0 {
		m := <-a.peer.in
		if m.Type != proto.CodeError || string(m.URI) != proto.URIUnavailable {
			t.Fatalf("caller A got %s, want ERRORs %s", describe(m), proto.URIUnavailable)
		}
		if len(argsOf(m)) == 1 && argsOf(m)[0] == msgCalleeShare {
			shared++
		}
		refused++
	}
	held := len(callee.peer.in)
	b := es[0].join(proto.JSON)
	b.call("com.svc", nil, []any{"b"}, nil)
	mm.sync()
	if len(b.peer.in) != 0 {
		t.Fatalf("caller B's call got %s while A holds the callee's %d queued invocations", describe(<-b.peer.in), held)
	}
	if held < 16 || held+refused != 100 || shared != refused {
		t.Fatalf("the callee holds %d of A's invocations, %d refused, %d of them for A's share", held, refused, shared)
	}
	for len(callee.peer.in) > 0 {
		if m := <-callee.peer.in; len(argsOf(m)) == 1 && argsOf(m)[0] == "b" {
			if n := es[1].r.Stats().CallsRefusedShare; n != uint64(refused) {
				t.Fatalf("refusals counted on the callee's node: %d, want %d", n, refused)
			}
			return
		}
	}
	t.Fatal("caller B's INVOCATION did not reach the callee")
}
