package route

import (
	"fmt"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The meta events of a realm in causal order across shards: a subscriber
// sees on_create before any on_register of the registration, on_delete
// after every on_unregister, a session's on_join before its other events
// and its on_leave after them, whichever shards the sessions are on (WAMP
// Advanced Profile, Registration Meta Events: "A wamp.registration.on_register
// event MUST be fired subsequent to a wamp.registration.on_create event";
// "the wamp.registration.on_delete event MUST be preceded by a
// wamp.registration.on_unregister event"; the same for subscriptions).
// Before, the table changed under the realm's lock and each shard
// published its events after it, delivered inline on its own shard and
// through the mailboxes of the others: two callees on shards 0 and 1
// registering one URI at once gave a subscriber on shard 2 on_register
// before on_create, or on_delete before the other callee's on_unregister.

// metaLog is a monitor's record of the meta events of one round, in the
// order they arrived.
type metaLog struct {
	t      *testing.T
	topics map[uint64]string // subscription id -> topic
	events []metaSeen
}

type metaSeen struct {
	topic string
	sess  uint64 // the session the event is about
	id    uint64 // the registration or subscription, 0 for session events
}

// watchMeta subscribes mon to topics and returns the log they fill.
func watchMeta(t *testing.T, mon *tc, topics ...string) *metaLog {
	t.Helper()
	l := &metaLog{t: t, topics: map[uint64]string{}}
	for _, topic := range topics {
		req := mon.nextReq()
		mon.send(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: mon.opts(nil), URI: []byte(topic)})
		for {
			// The monitor's own subscriptions' meta events skipped.
			if m := mon.recv(); m.Type == proto.CodeSubscribed && m.Request == req {
				l.topics[m.ID] = topic
				break
			} else if m.Type != proto.CodeEvent {
				t.Fatalf("got %v %s, want SUBSCRIBED", m.Type, describe(m))
			}
		}
	}
	mon.e.sync()
	for len(mon.peer.in) > 0 {
		mon.recv()
	}
	return l
}

// read takes n events from mon.
func (l *metaLog) read(mon *tc, n int) {
	l.t.Helper()
	l.events = l.events[:0]
	for range n {
		m := mon.expect(proto.CodeEvent)
		topic, ok := l.topics[m.ID]
		if !ok {
			l.t.Fatalf("event on unknown subscription %d: %s", m.ID, describe(m))
		}
		args := argsOf(m)
		ev := metaSeen{topic: topic}
		switch topic {
		case metaSessionOnJoin:
			d, _ := args[0].(map[string]any)
			ev.sess = uint64(d["session"].(int64))
		case metaSessionOnLeave:
			ev.sess = uint64(args[0].(int64))
		case metaRegOnCreate, metaSubOnCreate:
			ev.sess = uint64(args[0].(int64))
			d, _ := args[1].(map[string]any)
			ev.id = uint64(d["id"].(int64))
		default:
			ev.sess, ev.id = uint64(args[0].(int64)), uint64(args[1].(int64))
		}
		l.events = append(l.events, ev)
	}
}

// at returns the position of the event, or -1.
func (l *metaLog) at(topic string, sess uint64) int {
	for i, ev := range l.events {
		if ev.topic == topic && (sess == 0 || ev.sess == sess) {
			return i
		}
	}
	return -1
}

// before reports an error unless event a arrived, and before b.
func (l *metaLog) before(a, b int, what string) string {
	if a < 0 || b < 0 {
		return fmt.Sprintf("%s: missing (%d, %d)", what, a, b)
	}
	if a > b {
		return what
	}
	return ""
}

func (l *metaLog) String() string {
	s := ""
	for _, ev := range l.events {
		s += fmt.Sprintf("\n  %s session %d id %d", ev.topic, ev.sess, ev.id)
	}
	return s
}

// lifeOrder returns the first causal-order violation among the events of
// one shared registration's (subscription's) life that sessions a and b
// joined and left: create before each one's join, each one's join before
// its leave, each leave before del; "" when there is none.
func (l *metaLog) lifeOrder(create, join, leave, del string, a, b *tc) string {
	c, d := l.at(create, 0), l.at(del, 0)
	for _, s := range []struct {
		name string
		id   uint64
	}{{"a", a.id}, {"b", b.id}} {
		on, off := l.at(join, s.id), l.at(leave, s.id)
		for _, why := range []string{
			l.before(c, on, create+" after "+s.name+"'s "+join),
			l.before(on, off, s.name+"'s "+join+" after its "+leave),
			l.before(off, d, del+" before "+s.name+"'s "+leave),
		} {
			if why != "" {
				return why
			}
		}
	}
	return ""
}

// metaRounds is how many rounds the ordering tests run: the finding saw
// 12 (registrations) and 4 (subscriptions) of 300 out of order.
const metaRounds = 300

// TestMetaEventsCausalOrderRegistrations: two callees on shards 0 and 1
// register one URI at once, then unregister it at once; the monitor on
// shard 2 must see on_create, both on_register, both on_unregister and
// on_delete in that causal order, every round.
func TestMetaEventsCausalOrderRegistrations(t *testing.T) {
	e := newEnv(t, 3, nil)
	mon := e.joinRealmOn(2, proto.JSON, "realm1", allFeatures)
	l := watchMeta(t, mon, metaRegOnCreate, metaRegOnRegister, metaRegOnUnregister, metaRegOnDelete)
	a := e.joinRealmOn(0, proto.MsgPack, "realm1", allFeatures)
	b := e.joinRealmOn(1, proto.CBOR, "realm1", allFeatures)
	bad := 0
	for round := range metaRounds {
		for _, c := range []*tc{a, b} {
			c.sendAsync(&proto.Message{Type: proto.CodeRegister, Request: c.nextReq(), Dict: c.opts(map[string]any{"invoke": "roundrobin"}), URI: []byte("com.shared")})
		}
		ra, rb := a.expect(proto.CodeRegistered).ID, b.expect(proto.CodeRegistered).ID
		for _, c := range []*tc{a, b} {
			c.sendAsync(&proto.Message{Type: proto.CodeUnregister, Request: c.nextReq(), ID: ra})
		}
		a.expect(proto.CodeUnregistered)
		b.expect(proto.CodeUnregistered)
		if ra != rb {
			t.Fatalf("round %d: registrations %d and %d", round, ra, rb)
		}
		l.read(mon, 6)
		if why := l.lifeOrder(metaRegOnCreate, metaRegOnRegister, metaRegOnUnregister, metaRegOnDelete, a, b); why != "" {
			bad++
			t.Errorf("round %d: %s:%s", round, why, l)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds out of causal order", bad, metaRounds)
	}
}

// TestMetaEventsCausalOrderSubscriptions is the same for subscriptions.
func TestMetaEventsCausalOrderSubscriptions(t *testing.T) {
	e := newEnv(t, 3, nil)
	mon := e.joinRealmOn(2, proto.JSON, "realm1", allFeatures)
	l := watchMeta(t, mon, metaSubOnCreate, metaSubOnSubscribe, metaSubOnUnsubscribe, metaSubOnDelete)
	a := e.joinRealmOn(0, proto.MsgPack, "realm1", allFeatures)
	b := e.joinRealmOn(1, proto.CBOR, "realm1", allFeatures)
	bad := 0
	for round := range metaRounds {
		for _, c := range []*tc{a, b} {
			c.sendAsync(&proto.Message{Type: proto.CodeSubscribe, Request: c.nextReq(), Dict: c.opts(nil), URI: []byte("com.topic")})
		}
		sa, sb := a.expect(proto.CodeSubscribed).ID, b.expect(proto.CodeSubscribed).ID
		for _, c := range []*tc{a, b} {
			c.sendAsync(&proto.Message{Type: proto.CodeUnsubscribe, Request: c.nextReq(), ID: sa})
		}
		a.expect(proto.CodeUnsubscribed)
		b.expect(proto.CodeUnsubscribed)
		if sa != sb {
			t.Fatalf("round %d: subscriptions %d and %d", round, sa, sb)
		}
		l.read(mon, 6)
		if why := l.lifeOrder(metaSubOnCreate, metaSubOnSubscribe, metaSubOnUnsubscribe, metaSubOnDelete, a, b); why != "" {
			bad++
			t.Errorf("round %d: %s:%s", round, why, l)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds out of causal order", bad, metaRounds)
	}
}

// TestMetaEventsCausalOrderSessions: two sessions on shards 0 and 1 join,
// register one URI at once and leave at once (their transports dropped);
// the monitor on shard 2 must see each session's on_join before its
// on_register, its on_unregister before its on_leave, on_create before
// both on_register and on_delete after both on_unregister.
func TestMetaEventsCausalOrderSessions(t *testing.T) {
	e := newEnv(t, 3, nil)
	mon := e.joinRealmOn(2, proto.JSON, "realm1", allFeatures)
	l := watchMeta(t, mon, metaSessionOnJoin, metaSessionOnLeave, metaRegOnCreate, metaRegOnRegister, metaRegOnUnregister, metaRegOnDelete)
	bad := 0
	for round := range metaRounds {
		a := e.joinRealmOn(0, proto.MsgPack, "realm1", allFeatures)
		b := e.joinRealmOn(1, proto.CBOR, "realm1", allFeatures)
		for _, c := range []*tc{a, b} {
			c.sendAsync(&proto.Message{Type: proto.CodeRegister, Request: c.nextReq(), Dict: c.opts(map[string]any{"invoke": "roundrobin"}), URI: []byte("com.shared")})
		}
		a.expect(proto.CodeRegistered)
		b.expect(proto.CodeRegistered)
		for _, c := range []*tc{a, b} {
			c.peer.closed.Store(true)
			if err := c.exec.Execute(func() { c.sh.Detach(c.sess) }); err != nil {
				t.Fatal(err)
			}
		}
		l.read(mon, 10)
		create, del := l.at(metaRegOnCreate, 0), l.at(metaRegOnDelete, 0)
		var whys []string
		for _, c := range []*tc{a, b} {
			join, reg := l.at(metaSessionOnJoin, c.id), l.at(metaRegOnRegister, c.id)
			unreg, leave := l.at(metaRegOnUnregister, c.id), l.at(metaSessionOnLeave, c.id)
			whys = append(whys,
				l.before(join, reg, "on_join after the session's on_register"),
				l.before(create, reg, "on_create after an on_register"),
				l.before(reg, unreg, "on_register after the session's on_unregister"),
				l.before(unreg, del, "on_delete before an on_unregister"),
				l.before(unreg, leave, "on_leave before the session's on_unregister"))
		}
		for _, why := range whys {
			if why != "" {
				bad++
				t.Errorf("round %d: %s:%s", round, why, l)
				break
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d rounds out of causal order", bad, metaRounds)
	}
}

// TestMetaFlushTurnBounded: a shard publishes at most metaTurn of the
// realm's queued meta events in one go (the others' events do not hold its
// loop), and a turn it posts to itself publishes the rest, in order.
func TestMetaFlushTurnBounded(t *testing.T) {
	e := newEnv(t, 2, nil)
	mon := e.joinRealmOn(1, proto.JSON, "realm1", allFeatures)
	l := watchMeta(t, mon, metaSessionOnJoin)
	rm := e.r.Realm("realm1")
	const n = 2*metaTurn + 100
	left := -1
	e.execs[0].do(func() {
		for i := range n {
			rm.metaPush(metaItem{topic: metaSessionOnJoin, sess: uint64(i + 1), args: []any{map[string]any{"session": i + 1}}})
		}
		e.r.Shard(0).metaFlush(rm)
		rm.meta.mu.Lock()
		left = len(rm.meta.q) - rm.meta.head
		rm.meta.mu.Unlock()
	})
	if left != n-metaTurn {
		t.Fatalf("%d events left after one turn, want %d", left, n-metaTurn)
	}
	l.read(mon, n)
	for i, ev := range l.events {
		if ev.sess != uint64(i+1) {
			t.Fatalf("event %d is session %d's", i, ev.sess)
		}
	}
	mon.quiet()
}
