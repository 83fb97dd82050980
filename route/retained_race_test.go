package route

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// eventsOf reads the EVENTs c has received until it has been quiet for a
// while, as "value retained=bool".
func eventsOf(c *tc) []string {
	c.e.sync()
	var got []string
	for {
		select {
		case m := <-c.peer.in:
			if m.Type != proto.CodeEvent {
				c.t.Fatalf("unexpected %v %s", m.Type, describe(m))
			}
			got = append(got, fmt.Sprintf("%v retained=%v", argsOf(m)[0], m.Opt.Bool(proto.KeyRetained, false)))
			continue
		default:
		}
		c.e.sync()
		if len(c.peer.in) == 0 {
			return got
		}
	}
}

// One router, the publisher's loop apart from the subscriber's: the
// publisher's shard retains v1 and v2 and hands them to the subscriber's
// shard (which has another subscriber of the topic) as tasks. A
// get_retained SUBSCRIBE that the subscriber's shard runs before those
// tasks got the retained v2, then v1 and v2 live: v2 twice, and v1 after
// the newer retained v2. Events published before the retained one by its
// publisher are not delivered after it; later ones are.
func TestRetainedNotTwiceAcrossShards(t *testing.T) {
	e := newEnv(t, 2, nil)
	pub := e.joinOn(0, proto.JSON)
	other := e.joinOn(1, proto.JSON)
	sub := e.joinOn(1, proto.MsgPack)
	other.subscribe("com.state", nil)

	req := sub.nextReq()
	b, err := sub.enc.Append(nil, sub.peer.ser, &proto.Message{Type: proto.CodeSubscribe, Request: req,
		Dict: sub.opts(map[string]any{"get_retained": true}), URI: []byte("com.state")})
	if err != nil {
		t.Fatal(err)
	}
	// The subscriber's shard takes the SUBSCRIBE before the tasks the
	// publisher's shard queues for it meanwhile.
	published := make(chan struct{})
	if err := e.execs[1].Execute(func() {
		<-published
		sub.sh.Receive(sub.sess, b)
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{v}, nil)
		pub.expect(proto.CodePublished)
	}
	close(published)
	if m := sub.expect(proto.CodeSubscribed); m.Request != req {
		t.Fatalf("SUBSCRIBED for %d, want %d", m.Request, req)
	}
	pub.publish("com.state", map[string]any{"acknowledge": true}, []any{"v3"}, nil)
	pub.expect(proto.CodePublished)
	if got, want := eventsOf(sub), []string{"v2 retained=true", "v3 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscriber got %q, want %q", got, want)
	}
	// v1 (older than the retained v2) and v2 live were not delivered: counted.
	if n := e.r.Stats().EventsSuperseded; n != 2 {
		t.Fatalf("EventsSuperseded %d, want 2", n)
	}
	if got, want := eventsOf(other), []string{"v1 retained=false", "v2 retained=false", "v3 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the other subscriber got %q, want %q", got, want)
	}
}

// winsOf returns the windows sub's subscription has open, by the gate
// the fan-out reads, and c's session's own count and bound shares.
func winsOf(c *tc, topic string) (gate int32, wins, marks, heldN int) {
	c.e.sync()
	rm := c.e.r.Realm("realm1")
	rm.mu.RLock()
	sub, _ := rm.subs.get(proto.MatchExact, topic)
	rm.mu.RUnlock()
	c.exec.do(func() { wins, marks, heldN = len(c.sess.wins), c.sess.winMarks, c.sess.winHeldN })
	if sub != nil {
		gate = sub.wins.Load()
	}
	return gate, wins, marks, heldN
}

// A mesh: the subscriber's node gathers the retained events of the other
// nodes while live events arrive, here the retained event itself (v1) and
// another publisher's. They are held until the retained events are
// delivered: the retained v1 first, once, then the other publisher's
// event; before, the subscriber got v1 live, the other event, then the
// retained v1 again.
func TestMeshRetainedWhileGathered(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	pub2 := es[0].join(proto.CBOR)
	sub := es[1].join(proto.MsgPack)
	mm.nodes[1].gatherHold.Store(true)
	sub.subscribe("com.state", map[string]any{"get_retained": true})
	pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{"v1"}, nil)
	pub.expect(proto.CodePublished)
	pub2.publish("com.state", map[string]any{"acknowledge": true}, []any{"other"}, nil)
	pub2.expect(proto.CodePublished)
	mm.sync()
	if got := eventsOf(sub); len(got) != 0 {
		t.Fatalf("events before the retained ones: %q", got)
	}
	if gate, wins, _, heldN := winsOf(sub, "com.state"); gate != 1 || wins != 1 || heldN != 2 {
		t.Fatalf("window gate %d, session windows %d, held %d; want 1, 1, 2", gate, wins, heldN)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	pub.publish("com.state", map[string]any{"acknowledge": true}, []any{"v2"}, nil)
	pub.expect(proto.CodePublished)
	mm.sync()
	if got, want := eventsOf(sub), []string{"v1 retained=true", "other retained=false", "v2 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscriber got %q, want %q", got, want)
	}
	// v1 live, held during the gather, went out only as the retained copy.
	if n := mm.nodes[1].e.r.Stats().EventsSuperseded; n != 1 {
		t.Fatalf("EventsSuperseded on the subscriber's node %d, want 1", n)
	}
	// v2, newer from v1's publisher, ended the window.
	if gate, wins, marks, heldN := winsOf(sub, "com.state"); gate != 0 || wins != 0 || marks != 0 || heldN != 0 {
		t.Fatalf("after: gate %d, windows %d, marks %d, held %d; want none", gate, wins, marks, heldN)
	}
}

// What a window holds is bounded: past maxWinHeldN events (or
// maxWinHeld bytes) of the session, the held events go out in order, the
// later ones live, and the retained event, older than all of them by
// then, is not delivered.
func TestMeshRetainedWindowHeldBound(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	pub.publish("com.state", map[string]any{"retain": true, "acknowledge": true}, []any{-1}, nil)
	pub.expect(proto.CodePublished)
	sub := es[1].join(proto.MsgPack)
	mm.nodes[1].gatherHold.Store(true)
	sub.subscribe("com.state", map[string]any{"get_retained": true})
	const n = maxWinHeldN + 10
	for i := range n {
		pub.publish("com.state", nil, []any{i}, nil)
	}
	mm.sync()
	if _, _, _, heldN := winsOf(sub, "com.state"); heldN != 0 {
		t.Fatalf("%d events held past the bound", heldN)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	got := eventsOf(sub)
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i, g := range got {
		if g != fmt.Sprintf("%d retained=false", i) {
			t.Fatalf("event %d is %q", i, g)
		}
	}
	if gate, wins, _, _ := winsOf(sub, "com.state"); gate != 0 || wins != 0 {
		t.Fatalf("after: gate %d, windows %d; want none", gate, wins)
	}
}

// The live events a get_retained subscription holds while its retained
// events wait are bounded in bytes per session, payload included, when
// the publisher is on the subscriber's own shard too: the event's cost
// counted no payload there (it pointed into the PUBLISH) while the held
// copy has it, and 200 events of 64 KiB held 13 MB against the 1 MiB
// bound. Past the bound the window gives way: what it holds goes out, and
// the later events are delivered at once.
func TestRetainedWindowHeldBytesSameShard(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	const topics = maxRetained / 4 // four pattern scans spend the walk burst
	for i := range topics {
		pub.publish(fmt.Sprintf("r.t%d", i), map[string]any{"retain": true}, []any{i}, nil)
	}
	sub := e.join(proto.JSON)
	for range 4 {
		sub.subscribe("com.none", map[string]any{"match": "prefix", "get_retained": true})
	}
	// This one's scan waits for the budget: its window holds live events.
	sub.subscribe("com.big", map[string]any{"match": "prefix", "get_retained": true})
	big := strings.Repeat("x", 64<<10)
	const n = 200
	for range n {
		pub.publish("com.big.x", nil, []any{big}, nil)
	}
	e.sync()
	var held, counted int64
	sub.exec.do(func() {
		counted = sub.sess.winHeld
		for _, h := range sub.sess.held {
			held += int64(h.p.c.size())
		}
	})
	if held > maxWinHeld || counted > maxWinHeld {
		t.Fatalf("the windows hold %d bytes of payload, counted as %d; bound %d", held, counted, maxWinHeld)
	}
	got := 0
	for got < n {
		if m := sub.expect(proto.CodeEvent); len(argsOf(m)) == 1 {
			got++
		}
	}
}

// A mark lasts retFenceTTL at most, and a session's marks and windows are
// bounded; leaving closes them all.
func TestRetainedWindowsBounded(t *testing.T) {
	e := newEnv(t, 1, nil)
	pub := e.join(proto.JSON)
	for i := range maxWins + 8 {
		pub.publish(fmt.Sprintf("com.t%d", i), map[string]any{"retain": true}, []any{i}, nil)
	}
	other := e.join(proto.JSON)
	other.subscribe("com.t0", nil)
	sub := e.join(proto.JSON)
	for i := range maxWins + 8 {
		topic := fmt.Sprintf("com.t%d", i)
		sub.subscribe(topic, map[string]any{"get_retained": true})
		if m := sub.expect(proto.CodeEvent); argsOf(m)[0] != int64(i) {
			t.Fatalf("retained %s on %s", describe(m), topic)
		}
	}
	if gate, wins, marks, _ := winsOf(sub, "com.t0"); gate != 1 || wins != maxWins || marks != maxWinMarks {
		t.Fatalf("gate %d, windows %d, marks %d; want 1, %d, %d", gate, wins, marks, maxWins, maxWinMarks)
	}
	// Past retFenceTTL the windows' timer closes them (before, only the
	// next event on a window's topic did, and a quiet one stayed).
	e.advance(time.Duration(retFenceTTL) + time.Second)
	pub.publish("com.t0", nil, []any{"late"}, nil)
	sub.expect(proto.CodeEvent)
	other.expect(proto.CodeEvent)
	if gate, wins, _, _ := winsOf(sub, "com.t0"); gate != 0 || wins != 0 {
		t.Fatalf("gate %d, windows %d after the marks expired; want 0, 0", gate, wins)
	}
	// The next get_retained SUBSCRIBE drops every window that ended.
	sub.subscribe("com.none", map[string]any{"get_retained": true})
	if _, wins, marks, _ := winsOf(sub, "com.none"); wins != 0 || marks != 0 {
		t.Fatalf("windows %d, marks %d after they expired; want 0", wins, marks)
	}
	sub.subscribe("com.t1", map[string]any{"get_retained": true})
	sub.expect(proto.CodeEvent)
	other.subscribe("com.t1", nil)
	sub.goodbye()
	if gate, _, _, _ := winsOf(other, "com.t1"); gate != 0 {
		t.Fatalf("gate %d after the subscriber left", gate)
	}
}

// A mark compares publication counts as serial numbers: a session's
// count wraps at 2^32.
func TestRetainedMarkSeqWraps(t *testing.T) {
	var s Shard
	ss := &Session{winMarks: 1}
	w := &retWin{marks: map[string]retMark{"t": {src: 7, id: 100, seq: 1<<32 - 2}}}
	pub := func(id uint64, seq uint32) *publication {
		return &publication{id: id, src: 7, seq: seq, topic: []byte("t")}
	}
	for _, c := range []struct {
		p      *publication
		fenced bool
	}{
		{pub(100, 0), true},     // the retained event (by id)
		{pub(1, 1<<32-3), true}, // published before it
		{pub(2, 1<<32-2), true}, // the same count
		{&publication{id: 3, src: 8, seq: 1, topic: []byte("t")}, false}, // another publisher
		{pub(4, 1), false},       // after it, past the wrap: ends the mark
		{pub(5, 1<<32-3), false}, // the mark is gone
	} {
		if got := s.fenced(ss, w, c.p); got != c.fenced {
			t.Fatalf("publication %d seq %d: fenced %v, want %v", c.p.id, c.p.seq, got, c.fenced)
		}
	}
	if len(w.marks) != 0 || ss.winMarks != 0 {
		t.Fatalf("marks %v (%d) after a newer event of the publisher", w.marks, ss.winMarks)
	}
}

// WAMP Basic Profile, Ordering Guarantees: "If Subscriber A is subscribed
// to both Topic 1 and Topic 2, and Publisher B first publishes an Event 1
// to Topic 1 and then an Event 2 to Topic 2, then Subscriber A will first
// receive Event 1 and then Event 2." A get_retained pattern subscription
// whose retained scan waits for the session's walk budget held its live
// events while the session's other subscriptions got theirs at once:
// Event 2 arrived before Event 1 (found by review). While a window is
// pending, the session's other live events are held too, in the same
// queue; unsubscribing the pending subscription lets them go at once.
func TestHeldWindowKeepsOrderAcrossTopics(t *testing.T) {
	// One publisher's 40,000 retained topics: past its share's 16,384
	// events and, at what a retained event holds (retainedOverhead, about
	// 550 bytes since 526c8ca), its 16 MiB of bytes.
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher, c.MaxRetainedBytesPerPublisher = -1, -1 })
	pub := e.join(proto.JSON)
	// Retained topics the scans walk (none matches the patterns below).
	b := pub.opts(map[string]any{"retain": true})
	msgs := make([][]byte, 0, 40_000)
	for i := 0; i < 40_000; i++ {
		m := &proto.Message{Type: proto.CodePublish, Request: pub.nextReq(), Dict: b, URI: []byte(fmt.Sprintf("com.junk.%d", i))}
		raw, err := pub.enc.Append(nil, pub.peer.ser, m)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	pub.exec.do(func() {
		for _, raw := range msgs {
			pub.sh.Receive(pub.sess, raw)
		}
	})
	s := e.join(proto.JSON)
	s.subscribe("com.t2", nil)
	// pending has two scans take the burst of the session's budget, so
	// that a third's waits its turn, its window pending, and returns the
	// third's subscription id.
	pending := func(uri string) uint64 {
		s.subscribe("com.a.", map[string]any{"match": "prefix", "get_retained": true})
		s.subscribe("com.b.", map[string]any{"match": "prefix", "get_retained": true})
		return s.subscribe(uri, map[string]any{"match": "prefix", "get_retained": true})
	}
	// received reads up to n events, letting the scans have their turns.
	received := func(n int) []any {
		var order []any
		for i := 0; i < 20 && len(order) < n; i++ {
			select {
			case m := <-s.peer.in:
				order = append(order, argsOf(m)[0])
				continue
			case <-time.After(100 * time.Millisecond):
			}
			e.advance(200 * time.Millisecond) // the scan's turn
		}
		return order
	}
	pending("com.t1.")
	pub.publish("com.t1.x", nil, []any{"event 1"}, nil)
	pub.publish("com.t2", nil, []any{"event 2"}, nil)
	e.sync()
	order := received(2)
	t.Logf("received %v", order)
	if len(order) != 2 || order[0] != "event 1" {
		t.Errorf("subscriber received %v: want event 1 (published first, to topic 1) before event 2", order)
	}

	// Unsubscribing the pending subscription releases the held events.
	e.advance(time.Second) // the budget back
	id := pending("com.t3.")
	pub.publish("com.t3.x", nil, []any{"event 3"}, nil)
	pub.publish("com.t2", nil, []any{"event 4"}, nil)
	e.sync()
	select {
	case m := <-s.peer.in:
		t.Fatalf("got %s while the window is pending", describe(m))
	default:
	}
	s.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: s.nextReq(), ID: id})
	if m := s.expect(proto.CodeEvent); argsOf(m)[0] != "event 4" {
		t.Fatalf("got %s, want event 4 (event 3's subscription is gone)", describe(m))
	}
	if m := s.expect(proto.CodeUnsubscribed); m.Request != s.req {
		t.Fatalf("UNSUBSCRIBED %s", describe(m))
	}
	e.advance(time.Second)
	e.sync()
	s.quiet()
	var pendingN, shardN, heldN int
	s.exec.do(func() { pendingN, shardN, heldN = s.sess.winPending, s.sh.winPending, s.sess.winHeldN })
	if pendingN != 0 || shardN != 0 || heldN != 0 {
		t.Fatalf("after: %d windows pending (%d on the shard), %d events held; want none", pendingN, shardN, heldN)
	}
}

// On a mesh, a get_retained gather holds the session's live events of its
// other subscriptions too (TestHeldWindowKeepsOrderAcrossTopics on one
// node), and past the bound what is held goes out in order, across topics.
func TestMeshHeldWindowKeepsOrderAcrossTopics(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	pub.publish("com.t1", map[string]any{"retain": true, "acknowledge": true}, []any{"retained"}, nil)
	pub.expect(proto.CodePublished)
	sub := es[1].join(proto.MsgPack)
	sub.subscribe("com.t2", nil)
	mm.nodes[1].gatherHold.Store(true)
	id1 := sub.subscribe("com.t1", map[string]any{"get_retained": true})
	pub.publish("com.t1", nil, []any{"event 1"}, nil)
	pub.publish("com.t2", nil, []any{"event 2"}, nil)
	mm.sync()
	mm.nodes[1].releaseGathers()
	mm.sync()
	if got, want := eventsOf(sub), []string{"retained retained=true", "event 1 retained=false", "event 2 retained=false"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	// Past the bound, across topics: in order, the retained event not.
	// A new subscriber of com.t1 (a subscriber's get_retained SUBSCRIBE
	// opens no window).
	sub.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: sub.nextReq(), ID: id1})
	sub.expect(proto.CodeUnsubscribed)
	mm.sync()
	mm.nodes[1].gatherHold.Store(true)
	sub.send(&proto.Message{Type: proto.CodeSubscribe, Request: sub.nextReq(), Dict: sub.opts(map[string]any{"get_retained": true}), URI: []byte("com.t1")})
	sub.expect(proto.CodeSubscribed)
	const n = maxWinHeldN + 10
	for i := range n {
		pub.publish(fmt.Sprintf("com.t%d", 1+i%2), nil, []any{i}, nil)
	}
	mm.sync()
	mm.nodes[1].releaseGathers()
	mm.sync()
	got := eventsOf(sub)
	if len(got) != n {
		t.Fatalf("%d events, want %d: %q ... %q", len(got), n, got[:3], got[len(got)-3:])
	}
	for i, g := range got {
		if g != fmt.Sprintf("%d retained=false", i) {
			t.Fatalf("event %d is %q", i, g)
		}
	}
	if _, wins, _, heldN := winsOf(sub, "com.t1"); wins != 0 || heldN != 0 {
		t.Fatalf("after: %d windows, %d held; want none", wins, heldN)
	}
}

// Past the held events' bound, the retained events of a pending window
// still go out when they come, after the live events, but those of the
// topics the session was sent a live event of meanwhile (older than it):
// before, none did, and a get_retained that took seconds beside a steady
// stream of live events delivered no retained event at all. A window that
// cannot remember one more topic (the session's maxWinMarks) delivers
// none of them, as before; what it remembered is given back.
func TestMeshRetainedWindowPastHeldBoundDeliversOtherTopics(t *testing.T) {
	mm, es := newMemMesh(t, 2, 2, nil)
	pub := es[0].join(proto.JSON)
	for _, topic := range []string{"com.p.a", "com.p.b", "com.p.c"} {
		pub.publish(topic, map[string]any{"retain": true, "acknowledge": true}, []any{"retained " + topic}, nil)
		pub.expect(proto.CodePublished)
	}
	sub := es[1].join(proto.MsgPack)
	mm.nodes[1].gatherHold.Store(true)
	id := sub.subscribe("com.p.", map[string]any{"match": "prefix", "get_retained": true})
	const n = maxWinHeldN + 10
	for i := range n {
		pub.publish("com.p.a", nil, []any{i}, nil)
	}
	mm.sync()
	if _, _, marks, heldN := winsOf(sub, "com.p."); heldN != 0 || marks != 1 {
		t.Errorf("past the bound: %d events held, %d topics remembered; want 0, 1", heldN, marks)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	got := eventsOf(sub)
	if len(got) != n+2 {
		t.Fatalf("%d events, want %d: %q", len(got), n+2, got[max(0, len(got)-4):])
	}
	for i, g := range got[:n] {
		if g != fmt.Sprintf("%d retained=false", i) {
			t.Fatalf("event %d is %q", i, g)
		}
	}
	if tail := got[n:]; tail[0] > tail[1] {
		got[n], got[n+1] = tail[1], tail[0]
	}
	if want := []string{"retained com.p.b retained=true", "retained com.p.c retained=true"}; fmt.Sprint(got[n:]) != fmt.Sprint(want) {
		t.Fatalf("after the live events: %q, want %q", got[n:], want)
	}
	if _, wins, marks, _ := winsOf(sub, "com.p."); wins != 1 || marks != 2 {
		t.Fatalf("after: %d windows, %d marks; want the window fenced by the 2 delivered", wins, marks)
	}

	// Past the topics it may remember: no retained event.
	sub.send(&proto.Message{Type: proto.CodeUnsubscribe, Request: sub.nextReq(), ID: id})
	sub.expect(proto.CodeUnsubscribed)
	mm.sync()
	if _, wins, marks, _ := winsOf(sub, "com.p."); wins != 0 || marks != 0 {
		t.Fatalf("after the UNSUBSCRIBE: %d windows, %d marks", wins, marks)
	}
	mm.nodes[1].gatherHold.Store(true)
	sub.subscribe("com.p.", map[string]any{"match": "prefix", "get_retained": true})
	const m = maxWinHeldN + maxWinMarks + 10
	got = nil
	for i := range m {
		pub.publish(fmt.Sprintf("com.p.x%d", i), nil, []any{i}, nil)
		if i%1024 == 1023 { // within the test peer's inbox
			got = append(got, eventsOf(sub)...)
		}
	}
	mm.sync()
	if _, _, marks, _ := winsOf(sub, "com.p."); marks != maxWinMarks {
		t.Fatalf("%d topics remembered, bound %d", marks, maxWinMarks)
	}
	mm.nodes[1].releaseGathers()
	mm.sync()
	got = append(got, eventsOf(sub)...)
	if len(got) != m || got[m-1] != fmt.Sprintf("%d retained=false", m-1) {
		t.Fatalf("%d events, want the %d live ones alone: %q", len(got), m, got[max(0, len(got)-3):])
	}
	if _, wins, marks, _ := winsOf(sub, "com.p."); wins != 0 || marks != 0 {
		t.Fatalf("after: %d windows, %d marks; want none", wins, marks)
	}
}
