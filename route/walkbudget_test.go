package route

import (
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// fillRetained gives realm1 n retained events with empty payloads on
// com.fill.<i>, as n retained PUBLISHes would.
func fillRetained(e *env, n int) {
	rm := e.r.Realm("realm1")
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for i := range n {
		topic := "com.fill." + strconv.Itoa(i)
		rm.retain(topic, &publication{id: uint64(i + 1), topic: []byte(topic), c: &carry{}, retained: true}, nil)
	}
}

// A get_retained SUBSCRIBE to a pattern scans every retained topic of the
// realm: about a millisecond of the loop at 65,536 topics for a message of
// a few dozen bytes. One session's pipelined pattern subscriptions used to
// run all their scans at once (2,000 held a loops:1 router for 2 s, and a
// victim's call on the same loop waited 2.06 s); now each session scans
// within a budget, the further scans wait their turn, and their retained
// events still arrive.
func TestRetainedScanBudgetPerSession(t *testing.T) {
	e := newEnv(t, 1, nil)
	fillRetained(e, maxRetained-1)
	pub := e.join(proto.JSON)
	pub.publish("com.match.x", map[string]any{"retain": true}, []any{"kept"}, nil)
	e.sync()

	att := e.join(proto.JSON)
	sub := func(c *tc, pattern string) (req uint64) {
		req = c.nextReq()
		c.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, URI: []byte(pattern),
			Dict: c.opts(map[string]any{"match": "prefix", "get_retained": true})})
		return req
	}
	// One scan, for scale.
	t0 := time.Now()
	sub(att, "com.nomatch.")
	att.expect(proto.CodeSubscribed)
	one := time.Since(t0)

	const n = 300
	t0 = time.Now()
	for range n {
		sub(att, "com.match.")
	}
	// A victim on the same loop.
	victim := e.join(proto.JSON)
	victim.subscribe("com.victim", nil)
	all := time.Since(t0)
	t.Logf("one scan %v; %d pipelined pattern get_retained SUBSCRIBEs and a victim's SUBSCRIBE %v", one, n, all)
	if all > 40*one+100*time.Millisecond {
		t.Fatalf("%d pipelined get_retained SUBSCRIBEs held the loop %v (one scan of %d topics: %v): the victim waited for all their scans",
			n, all, maxRetained, one)
	}
	// None is lost: every subscription gets its retained event, in time.
	expectKept(t, att, n, func() { e.advance(50 * time.Millisecond) })
	const waitBound = 1024 // maxRetainedScanWait
	// Past maxRetainedScanWait waiting, a SUBSCRIBE with get_retained is
	// refused, and one without it still works.
	for range waitBound + 2 {
		sub(att, "com.nomatch.")
	}
	var ok, refused int
	for ok+refused < waitBound+2 {
		m := att.recv()
		switch {
		case m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable:
			refused++
		case m.Type == proto.CodeSubscribed:
			ok++
		default:
			t.Fatalf("got %s", describe(m))
		}
	}
	if refused < 1 || refused > 2 {
		t.Fatalf("%d SUBSCRIBEs refused, want 1 or 2 (%d waiting at most)", refused, waitBound)
	}
	att.subscribe("com.plain", nil)
}

// On a mesh a pattern get_retained asks every node to scan its retained
// topics; it is charged against the session's walk budget too (at least
// meshScanMin, 8 at once and 64 a second), the further ones wait their
// turn, and all are answered. Before, only the gathers' 16-at-a-time
// bound applied: 200 pipelined from one node had another, which held the
// topics, run 200 scans of 16,384 at once.
func TestMeshRetainedScanBudgetPerSession(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	fillRetained(es[1], maxRetained/4)
	pub := es[1].join(proto.JSON)
	pub.publish("com.match.x", map[string]any{"retain": true}, []any{"kept"}, nil)
	mm.sync()
	att := es[0].join(proto.JSON)
	const n = 40
	for range n {
		req := att.nextReq()
		att.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, URI: []byte("com.match."),
			Dict: att.opts(map[string]any{"match": "prefix", "get_retained": true})})
	}
	mm.sync()
	var waiting int
	att.exec.do(func() { waiting = len(att.sess.walks.q) })
	if burst := walkBurst / meshScanMin; waiting < n-burst-2 {
		t.Fatalf("%d of %d pipelined pattern get_retained SUBSCRIBEs wait for the session's budget, want at least %d", waiting, n, n-burst-2)
	}
	expectKept(t, att, n, func() {
		es[0].advance(50 * time.Millisecond)
		mm.sync()
	})
}

// expectKept expects n retained events "kept" at c, calling advance (the
// clock, for the walks waiting their turn) while none is there.
func expectKept(t *testing.T, c *tc, n int, advance func()) {
	t.Helper()
	events := 0
	for i := 0; events < n && i < 2000; i++ {
		select {
		case m := <-c.peer.in:
			if m.Type == proto.CodeEvent {
				if argsOf(m)[0] != "kept" {
					t.Fatalf("event %s", describe(m))
				}
				events++
			}
		default:
			advance()
		}
	}
	if events != n {
		t.Fatalf("%d retained events delivered, want %d", events, n)
	}
}

// The meta procedures that list a realm table visit every entry for a
// CALL of a few dozen bytes: at 100,000 registrations about 15 ms of the
// loop each, and 50 pipelined wamp.registration.list calls from one
// session made a victim's call on the same loop wait 0.73 s. Now they run
// within the session's walk budget, the further ones wait their turn, and
// all are answered.
func TestMetaListWalkBudgetPerSession(t *testing.T) {
	e := newEnv(t, 1, nil)
	const regs = 20000
	r := e.join(proto.MsgPack)
	for i := range regs {
		r.register("com.reg."+strconv.Itoa(i), nil)
	}
	att := e.join(proto.MsgPack)
	t0 := time.Now()
	l := att.callMeta("wamp.registration.list", nil, nil)
	one := time.Since(t0)
	if n := len(ids(l.(map[string]any)["exact"])); n != regs {
		t.Fatalf("listed %d registrations, want %d", n, regs)
	}
	const n = 100
	t0 = time.Now()
	for range n {
		att.call("wamp.registration.list", nil, nil, nil)
	}
	victim := e.join(proto.JSON)
	victim.subscribe("com.victim", nil)
	all := time.Since(t0)
	t.Logf("one list of %d %v; %d pipelined lists and a victim's SUBSCRIBE %v", regs, one, n, all)
	if all > 20*one+100*time.Millisecond {
		t.Fatalf("%d pipelined wamp.registration.list calls held the loop %v (one: %v): the victim waited for all of them", n, all, one)
	}
	results, refused := 0, 0
	for i := 0; results+refused < n && i < 5000; i++ {
		select {
		case m := <-att.peer.in:
			switch m.Type {
			case proto.CodeResult:
				results++
			case proto.CodeError:
				if string(m.URI) != proto.URIUnavailable {
					t.Fatalf("error %s", describe(m))
				}
				refused++
			default:
				t.Fatalf("got %s", describe(m))
			}
		default:
			e.advance(50 * time.Millisecond)
		}
	}
	t.Logf("%d answered, %d refused (at most 16 wait)", results, refused)
	if results+refused != n || results < 16 || results > 18 {
		t.Fatalf("%d of %d lists answered and %d refused, want about 17 answered (one at once, 16 waiting) and the rest refused", results, n, refused)
	}
	// The budget back, a list is answered at once.
	e.advance(time.Minute)
	att.callMeta("wamp.registration.list", nil, nil)
}
