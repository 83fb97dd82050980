package route

import (
	"strconv"
	"strings"
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
		rm.retain(topic, &publication{id: uint64(i + 1), topic: []byte(topic), c: &carry{}, retained: true}, nil, "")
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

// drainMeta counts c's RESULTs and wamp.error.unavailable ERRORs until n
// have come, calling advance (the clock, for the calls waiting their
// turn) while none is there.
func drainMeta(t *testing.T, c *tc, n int, advance func()) (results, refused int) {
	t.Helper()
	for i := 0; results+refused < n && i < 5000; i++ {
		select {
		case m := <-c.peer.in:
			switch {
			case m.Type == proto.CodeResult:
				results++
			case m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable:
				refused++
			default:
				t.Fatalf("got %v %s", m.Type, describe(m))
			}
		default:
			advance()
		}
	}
	return results, refused
}

// answeredAtOnce counts c's RESULTs and ERRORs already there.
func answeredAtOnce(c *tc) (results, refused int) {
	for {
		select {
		case m := <-c.peer.in:
			switch m.Type {
			case proto.CodeResult:
				results++
			case proto.CodeError:
				refused++
			}
		default:
			return results, refused
		}
	}
}

// meshListWalkBudget sends 100 pipelined calls of list, which lists
// 20,000 entries made by fill, from a session on a node of a mesh of two
// (whose other node has none), and checks that they are answered within
// the walk budget as on one node: one at once, 16 later, the rest refused.
func meshListWalkBudget(t *testing.T, list string, fill func(c *tc, uri string)) {
	mm, es := newMemMesh(t, 2, 1, nil)
	e := es[0]
	const entries = 20000
	c := e.join(proto.MsgPack)
	for i := range entries {
		fill(c, "com.entry."+strconv.Itoa(i))
	}
	mm.sync()
	att := e.join(proto.MsgPack)
	t0 := time.Now()
	if l := att.callMeta(list, nil, nil); len(l.(map[string]any)["exact"].([]any)) != entries {
		t.Fatalf("listed %d, want %d", len(l.(map[string]any)["exact"].([]any)), entries)
	}
	one := time.Since(t0)
	e.advance(time.Minute) // the budget back
	const n = 100
	t0 = time.Now()
	for range n {
		att.call(list, nil, nil, nil)
	}
	victim := e.join(proto.JSON)
	victim.subscribe("com.victim", nil)
	all := time.Since(t0)
	mm.sync() // the other node's answers, for the gathered calls
	// Without advancing the clock: how many were walked at once?
	atOnce, refused := answeredAtOnce(att)
	t.Logf("one %s of %d: %v; %d pipelined and a victim's SUBSCRIBE: %v; answered at once: %d (%d refused)", list, entries, one, n, all, atOnce, refused)
	if atOnce > 2 {
		t.Fatalf("on a mesh node %d of %d pipelined %s calls (%d entries each) were walked at once (the victim waited %v, one list %v); the walk budget answers one and makes the rest wait (16 at most)", atOnce, n, list, entries, all, one)
	}
	results, more := drainMeta(t, att, n-atOnce-refused, func() {
		e.advance(50 * time.Millisecond)
		mm.sync()
	})
	results, refused = results+atOnce, refused+more
	t.Logf("%d answered, %d refused (at most 16 wait)", results, refused)
	if results+refused != n || results < 16 || results > 18 {
		t.Fatalf("%d of %d answered and %d refused, want about 17 answered (one at once, 16 waiting) and the rest refused", results, n, refused)
	}
}

// On a mesh node wamp.registration.list is answered from this node's
// directory (it is not gathered from the other nodes), and the walk budget
// applied only without a mesh: it had no bound at all there. 100 pipelined
// lists of 20,000 registrations were all walked at once (the victim's
// SUBSCRIBE on the same loop waited 0.40-0.87 s); now one is answered at
// once, 16 wait their turn, the rest are refused, as on one node.
func TestMeshRegistrationListWalkBudget(t *testing.T) {
	meshListWalkBudget(t, "wamp.registration.list", func(c *tc, uri string) { c.register(uri, nil) })
}

// On a mesh node wamp.subscription.list is gathered from every node, and
// had only the gathers' bounds (16 waiting for the other nodes, 64 more
// queued), which bound how many wait for the other nodes, not how many
// walk this node's table: each walked the realm's subscriptions before it
// took its turn, and as the other nodes answered quickly, all 100
// pipelined lists of 20,000 subscriptions were walked and answered at
// once. Now this node's walk is charged to the session's walk budget too.
func TestMeshSubscriptionListWalkBudget(t *testing.T) {
	meshListWalkBudget(t, "wamp.subscription.list", func(c *tc, uri string) { c.subscribe(uri, nil) })
}

// crowdWalkBudget sends 100 pipelined calls of proc, which lists the
// 10,000 sessions of the realm that join made (each returning the id proc
// takes), and checks that they are answered within the walk budget.
func crowdWalkBudget(t *testing.T, proc string, join func(e *env) uint64) {
	e := newEnv(t, 1, nil)
	const crowd = 10000
	var id uint64
	for range crowd {
		id = join(e)
	}
	att := e.join(proto.MsgPack)
	t0 := time.Now()
	if l := att.callMeta(proc, []any{id}, nil); len(l.([]any)) != crowd {
		t.Fatalf("listed %d", len(l.([]any)))
	}
	one := time.Since(t0)
	e.advance(time.Minute) // the budget back
	const n = 100
	t0 = time.Now()
	for range n {
		att.call(proc, nil, []any{id}, nil)
	}
	victim := e.join(proto.JSON)
	victim.subscribe("com.victim", nil)
	all := time.Since(t0)
	atOnce, refused := answeredAtOnce(att)
	t.Logf("one %s of %d: %v; %d pipelined and a victim's SUBSCRIBE: %v; answered at once: %d (%d refused)", proc, crowd, one, n, all, atOnce, refused)
	if atOnce > 2 {
		t.Fatalf("%d of %d pipelined %s (%d each) were walked at once, holding the loop %v (one: %v); the walk budget of wamp.session.list answers one and makes the rest wait", atOnce, n, proc, crowd, all, one)
	}
	results, more := drainMeta(t, att, n-atOnce-refused, func() { e.advance(50 * time.Millisecond) })
	results, refused = results+atOnce, refused+more
	t.Logf("%d answered, %d refused (at most 16 wait)", results, refused)
	if results+refused != n || results < 16 || results > 18 {
		t.Fatalf("%d of %d answered and %d refused, want about 17 answered (one at once, 16 waiting) and the rest refused", results, n, refused)
	}
	// A call for an id that names nothing walks nothing and is answered
	// at once, its error unchanged.
	e.advance(time.Minute)
	req := att.call(proc, nil, []any{uint64(1)}, nil)
	if m := att.expect(proto.CodeError); m.Request != req || string(m.URI) == proto.URIUnavailable {
		t.Fatalf("%s of no such id: %s", proc, describe(m))
	}
}

// wamp.subscription.list_subscribers visits every subscriber of a
// subscription and lists them all, as wamp.session.list visits every
// session, but it was not charged to the walk budget: 100 pipelined calls
// on a topic of 10,000 subscribers were all walked at once (the loop held
// 0.32-0.93 s). Now it is charged for the subscribers it lists, as
// wamp.session.list is for the sessions.
func TestListSubscribersWalkBudget(t *testing.T) {
	crowdWalkBudget(t, "wamp.subscription.list_subscribers", func(e *env) uint64 {
		return e.join(proto.MsgPack).subscribe("com.crowd", nil)
	})
}

// wamp.registration.list_callees is the same for the callees of a shared
// registration.
func TestListCalleesWalkBudget(t *testing.T) {
	crowdWalkBudget(t, "wamp.registration.list_callees", func(e *env) uint64 {
		return e.join(proto.MsgPack).register("com.crowd", map[string]any{"invoke": "roundrobin"})
	})
}

// A pattern get_retained SUBSCRIBE whose scan waits for the session's
// walk budget, followed by an UNSUBSCRIBE and a SUBSCRIBE to the same
// pattern (another session keeping the subscription, so it is the same
// one): the waiting scan belongs to the subscription the session left,
// and is dropped. Before, it found the session subscribed again and
// delivered the retained events to the new subscription, which did not
// ask for them, or, when it asked too, a second time.
func TestWaitingRetainedScanDroppedOnResubscribe(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "get_retained"}[again], func(t *testing.T) {
			e := newEnv(t, 1, nil)
			pub := e.join(proto.JSON)
			pub.publish("com.match.x", map[string]any{"retain": true}, []any{"kept"}, nil)
			keeper := e.join(proto.JSON)
			keeper.subscribe("com.match.", map[string]any{"match": "prefix"})
			c := e.join(proto.JSON)
			c.exec.do(func() { c.sess.walks = walkBudget{tokens: -walkRate, at: e.clock.now().UnixNano()} }) // a second's debt
			id := c.subscribe("com.match.", map[string]any{"match": "prefix", "get_retained": true})
			var waiting int
			c.exec.do(func() { waiting = len(c.sess.walks.q) })
			if waiting != 1 {
				t.Fatalf("%d scans waiting, want 1", waiting)
			}
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
			c.expect(proto.CodeUnsubscribed)
			o := map[string]any{"match": "prefix"}
			if again {
				o["get_retained"] = true
			}
			if id2 := c.subscribe("com.match.", o); id2 != id {
				t.Fatalf("subscription %d, want the same %d", id2, id)
			}
			e.advance(2 * time.Second)
			if again {
				m := c.expect(proto.CodeEvent)
				if argsOf(m)[0] != "kept" {
					t.Fatalf("event %s", describe(m))
				}
			}
			c.quiet()
			c.exec.do(func() {
				if len(c.sess.walks.q) != 0 || c.sess.winPending != 0 || len(c.sess.held) != 0 {
					t.Errorf("left: %d walks, %d pending windows, %d held events", len(c.sess.walks.q), c.sess.winPending, len(c.sess.held))
				}
			})
		})
	}
}

// On a mesh, likewise for the gather of the other nodes' retained events
// (a pattern's, after its turn, or an exact topic's): the session leaving
// the subscription and subscribing again while it is on its way drops its
// answer. Before, the new subscription got the retained events it did not
// ask for.
func TestMeshGatherDroppedOnResubscribe(t *testing.T) {
	for _, match := range []string{"prefix", "exact"} {
		t.Run(match, func(t *testing.T) {
			mm, es := newMemMesh(t, 2, 1, nil)
			pub := es[1].join(proto.JSON)
			pub.publish("com.match.x", map[string]any{"retain": true}, []any{"kept"}, nil)
			uri := map[string]string{"prefix": "com.match.", "exact": "com.match.x"}[match]
			keeper := es[0].join(proto.JSON)
			keeper.subscribe(uri, map[string]any{"match": match})
			mm.sync()
			c := es[0].join(proto.JSON)
			mm.nodes[0].gatherHold.Store(true)
			id := c.subscribe(uri, map[string]any{"match": match, "get_retained": true})
			req := c.nextReq()
			c.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
			c.expect(proto.CodeUnsubscribed)
			if id2 := c.subscribe(uri, map[string]any{"match": match}); id2 != id {
				t.Fatalf("subscription %d, want the same %d", id2, id)
			}
			mm.nodes[0].releaseGathers()
			mm.sync()
			c.quiet()
			// Asked again, it has them once.
			c.subscribe(uri, map[string]any{"match": match, "get_retained": true})
			mm.sync()
			if m := c.expect(proto.CodeEvent); argsOf(m)[0] != "kept" {
				t.Fatalf("event %s", describe(m))
			}
			c.quiet()
		})
	}
}

// A meta call gathered from every node had the other nodes walk, list and
// encode their tables (on their shard 0), while the session that asked
// was charged for its own node's entries only: a session on a node with
// no subscriptions had another node list its 5,000 subscriptions 80
// times at once (its 16 gathers and the 64 calls waiting for them), then
// again as often as it liked. The other nodes' parts are now charged to
// its walk budget when they come, and its calls waiting to ask the other
// nodes wait for the debt to be paid: the 16 under way are answered at
// once, the others at the budget's pace, as on one node.
func TestMeshGatheredListChargesTheOtherNodes(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	const entries = 5000
	holder := es[1].join(proto.MsgPack)
	for i := range entries {
		holder.subscribe("com.entry."+strconv.Itoa(i), nil)
	}
	mm.sync()
	e := es[0]
	att := e.join(proto.MsgPack)
	if l := att.callMeta("wamp.subscription.list", nil, nil); len(l.(map[string]any)["exact"].([]any)) != entries {
		t.Fatalf("listed %d, want %d", len(l.(map[string]any)["exact"].([]any)), entries)
	}
	e.advance(time.Minute) // the budget back
	const n = 100
	for range n {
		att.call("wamp.subscription.list", nil, nil, nil)
	}
	// Without advancing the clock: how many had the other node list its
	// table?
	for range 8 {
		mm.sync()
	}
	atOnce, refused := answeredAtOnce(att)
	t.Logf("%d pipelined wamp.subscription.list of the other node's %d subscriptions: %d answered at once, %d refused", n, entries, atOnce, refused)
	// The 16 gathers under way, and those the budget still allowed once
	// the first answers were charged.
	if lim := maxSessionGathers + walkBurst/(entries*metaEntryCost) + 1; atOnce > lim {
		t.Fatalf("%d of %d pipelined wamp.subscription.list calls had the other node list its %d subscriptions at once; the walk budget allows %d (the gathers already under way)", atOnce, n, entries, lim)
	}
	// A second of the clock pays for about 13 more lists of 5,000.
	for range 20 {
		e.advance(50 * time.Millisecond)
		mm.sync()
	}
	more, _ := answeredAtOnce(att)
	if lim := int((walkRate+walkBurst)/(entries*metaEntryCost) + 2); atOnce+more > maxSessionGathers+lim {
		t.Fatalf("%d answered after a second of the clock, want at most %d", atOnce+more, maxSessionGathers+lim)
	}
	// None is lost: the rest are answered as the budget allows.
	results, more2 := drainMeta(t, att, n-atOnce-more-refused, func() {
		e.advance(100 * time.Millisecond)
		mm.sync()
	})
	results += atOnce + more
	refused += more2
	// How many were refused depends on when the first answers came
	// (before the debt, calls wait to ask the other nodes, 64 at most;
	// in it, they wait for the budget, 16 at most).
	if results+refused != n || results < 1+maxMetaWalkWait {
		t.Fatalf("%d of %d answered and %d refused, want every call answered, at least %d of them with a result", results, n, refused, 1+maxMetaWalkWait)
	}
}

// A get_retained SUBSCRIBE of an exact topic on a mesh asks every node for
// its retained events of the topic, and was charged nothing: a session
// that repeated it (a subscriber may) had another node encode and send it
// its retained event (here 512 KiB; up to 4 MiB an answer) once per
// SUBSCRIBE, as fast as the gathers came back. The other nodes' answers
// are now charged to the session's walk budget by their bytes, as this
// node's retained events are on one node, and its next gathers wait for
// the debt; every SUBSCRIBE still gets the retained event.
func TestMeshExactGetRetainedChargesTheOtherNodes(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	big := strings.Repeat("k", 512<<10)
	pub := es[1].join(proto.JSON)
	pub.publish("com.big", map[string]any{"retain": true}, []any{big}, nil)
	mm.sync()
	e := es[0]
	att := e.join(proto.JSON)
	e.advance(time.Minute) // the budget full
	before := mm.nodes[0].queries.Load()
	const n = 20
	for range n {
		req := att.nextReq()
		att.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, URI: []byte("com.big"),
			Dict: att.opts(map[string]any{"get_retained": true})})
		mm.sync() // its gather answered before the next
	}
	asked := mm.nodes[0].queries.Load() - before
	// 512 KiB is 32 Ki entries of the budget's 64 Ki at once.
	if lim := int64(walkBurst*retainedBytesPerEntry/len(big)) + 1; asked > lim {
		t.Fatalf("%d repeated get_retained SUBSCRIBEs of an exact topic had the other node send its %d-byte retained event %d times with the clock stopped; the session's walk budget allows %d", n, len(big), asked, lim)
	}
	events := 0
	for i := 0; events < n && i < 2000; i++ {
		select {
		case m := <-att.peer.in:
			if m.Type == proto.CodeEvent {
				events++
			}
		default:
			e.advance(100 * time.Millisecond)
			mm.sync()
		}
	}
	if events != n {
		t.Fatalf("%d retained events delivered for %d get_retained SUBSCRIBEs, want one each", events, n)
	}
}

// A session in debt for the other nodes' answers arms one timer for the
// calls and get_retained SUBSCRIBEs that wait for it, not one each: 500
// pipelined get_retained SUBSCRIBEs of distinct topics armed 500 timers on
// its shard, each live until the debt was paid.
func TestMeshWalkDebtArmsOneTimer(t *testing.T) {
	mm, es := newMemMesh(t, 2, 1, nil)
	pub := es[1].join(proto.JSON)
	pub.publish("com.t", map[string]any{"retain": true}, []any{"kept"}, nil)
	mm.sync()
	e := es[0]
	att := e.join(proto.JSON)
	att.exec.do(func() { att.sess.walks = walkBudget{tokens: -walkRate, at: e.clock.now().UnixNano()} }) // a second's debt
	const n = 500
	for i := range n {
		att.send(&proto.Message{Type: proto.CodeSubscribe, Request: att.nextReq(), URI: []byte("com.s" + strconv.Itoa(i)),
			Dict: att.opts(map[string]any{"get_retained": true})})
	}
	mm.sync()
	var timers, waiting int
	att.exec.do(func() {
		for _, tm := range att.sh.timers {
			if tm.kind == tmWalk && tm.sess == att.sess {
				timers++
			}
		}
		waiting = len(att.sess.retains.q)
	})
	t.Logf("%d get_retained SUBSCRIBEs waiting for the debt, %d walk timers armed", waiting, timers)
	if waiting < n/2 {
		t.Fatalf("%d of %d get_retained SUBSCRIBEs wait for the session's debt, want most", waiting, n)
	}
	if timers > 2 {
		t.Fatalf("%d walk timers armed for one session's debt, want one", timers)
	}
	// They are all answered (with no retained event: none on their
	// topics) once it is paid.
	e.advance(2 * time.Second)
	mm.sync()
	att.exec.do(func() { waiting = len(att.sess.retains.q) })
	for i := 0; waiting > 0 && i < 100; i++ {
		e.advance(100 * time.Millisecond)
		mm.sync()
		att.exec.do(func() { waiting = len(att.sess.retains.q) })
	}
	if waiting > 0 {
		t.Fatalf("%d get_retained SUBSCRIBEs still wait after the debt was paid", waiting)
	}
}
