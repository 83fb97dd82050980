package route

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// joinFrom joins realm1 anonymously from the client address remote.
func (e *env) joinFrom(remote string) *tc {
	c := e.connectFrom(0, proto.JSON, remote)
	c.hello("realm1", allFeatures, nil)
	c.id = c.expect(proto.CodeWelcome).ID
	return c
}

// retainAck publishes a retained event on topic and waits for PUBLISHED
// (a retained event past a bound is still published).
func (c *tc) retainAck(topic string, v any) {
	c.t.Helper()
	c.publish(topic, map[string]any{"retain": true, "acknowledge": true}, []any{v}, nil)
	c.expect(proto.CodePublished)
}

// retainedTopics returns what a get_retained prefix subscription to com.
// gets: the topics with a retained event and their first argument. A new
// session's budget covers the scan, so the shard sends them in the
// SUBSCRIBE's turn: once e.sync returns they are all in the peer's inbox
// (a later one fails the GOODBYE). It waited for a 20 ms quiet window
// before: a select whose timer has fired by the time it polls (the test's
// goroutine preempted that long under load) may take the timer with
// events still waiting, and one run saw a retained event missing.
func (e *env) retainedTopics() map[string]any {
	e.t.Helper()
	e.sync()
	c := e.join(proto.JSON)
	defer c.goodbye()
	c.subscribe("com.", map[string]any{"match": "prefix", "get_retained": true})
	e.sync()
	got := map[string]any{}
	for {
		var m *proto.Message
		select {
		case m = <-c.peer.in:
		default:
			return got
		}
		if m.Type != proto.CodeEvent {
			e.t.Fatalf("got %s, want EVENT", describe(m))
		}
		got[m.Opt.String(proto.KeyTopic)] = argsOf(m)[0]
	}
}

// A realm's retained events are shared first come first served, and
// outlive their publishers: one anonymous session could fill them all
// and every other publisher's retained events were then delivered but
// not kept. Each publisher (an anonymous session's address, an
// authenticated one's authid) keeps at most its share; what it replaces,
// another publisher's event included, frees it.
func TestRetainedSharePerPublisher(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher = 3 })
	live := e.join(proto.JSON)
	live.subscribe("com.", map[string]any{"match": "prefix"})

	x := e.joinFrom("192.0.2.7:40001")
	for i := 1; i <= 4; i++ { // the 4th is past X's share
		x.retainAck("com.x."+string(rune('0'+i)), "x")
	}
	// Another session from X's address (a reconnect, a device behind the
	// same NAT) shares X's share.
	x2 := e.joinFrom("192.0.2.7:40002")
	x2.retainAck("com.x.5", "x2")
	for range 5 {
		live.expect(proto.CodeEvent) // delivered all the same
	}
	// Y, from another address, still retains.
	y := e.joinFrom("198.51.100.9:50000")
	y.retainAck("com.y.1", "y")
	y.retainAck("com.y.2", "y")
	want := map[string]any{"com.x.1": "x", "com.x.2": "x", "com.x.3": "x", "com.y.1": "y", "com.y.2": "y"}
	if got := e.retainedTopics(); !sameMap(got, want) {
		t.Fatalf("retained %v, want %v", got, want)
	}
	var refused, refusedShare uint64
	e.execs[0].do(func() {
		refused = e.r.Shard(0).stats.RetainRefused.Load()
		refusedShare = e.r.Shard(0).stats.RetainRefusedPublisher.Load()
	})
	if refused != 0 || refusedShare != 2 {
		t.Fatalf("refused %d for the realm, %d for the publisher's share; want 0, 2", refused, refusedShare)
	}

	// X replaces its own event at its bound: kept.
	x.retainAck("com.x.1", "x again")
	// Y replaces one of X's: X's share frees one, and X's events outlive
	// its sessions but a new session from its address is still within
	// the share.
	y.retainAck("com.x.2", "y")
	x.goodbye()
	x2.goodbye()
	x3 := e.joinFrom("192.0.2.7:40003")
	x3.retainAck("com.x.6", "x3")
	x3.retainAck("com.x.7", "x3") // past the share again
	want = map[string]any{"com.x.1": "x again", "com.x.2": "y", "com.x.3": "x", "com.x.6": "x3", "com.y.1": "y", "com.y.2": "y"}
	if got := e.retainedTopics(); !sameMap(got, want) {
		t.Fatalf("retained %v, want %v", got, want)
	}
	rm := e.r.Realm("realm1")
	rm.mu.RLock()
	xs, ys := *rm.retainedBy["address 192.0.2.7"], *rm.retainedBy["address 198.51.100.9"]
	rm.mu.RUnlock()
	if xs.events != 3 || ys.events != 3 {
		t.Fatalf("shares: X %+v, Y %+v; want 3 events each", xs, ys)
	}
	for range 6 { // Y's first two, then the four above
		live.expect(proto.CodeEvent)
	}
	live.quiet()
}

// An authenticated session's retained events count for its authid, not
// its address: another authid behind the same address keeps its own
// share, and the authid's sessions from elsewhere share one. An IPv6
// client's address is its /64.
func TestRetainedSharePerAuthidAndIPv6(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedPerPublisher = 1 })
	as := func(remote, authid string) *tc {
		c := e.connectFrom(0, proto.JSON, remote)
		c.hello("trusted", allFeatures, map[string]any{"authmethods": []any{"x-trust"}, "authid": authid})
		c.id = c.expect(proto.CodeWelcome).ID
		return c
	}
	alice := as("203.0.113.5:1000", "alice")
	bob := as("203.0.113.5:1001", "bob")
	alice.retainAck("com.a.1", "a")
	bob.retainAck("com.b.1", "b") // same address, another authid: kept
	alice2 := as("192.0.2.200:1002", "alice")
	alice2.retainAck("com.a.2", "a") // alice's share is used up, wherever from
	v6a := e.joinFrom("[2001:db8:1:2::a]:1003")
	v6b := e.joinFrom("[2001:db8:1:2::b]:1004")
	v6c := e.joinFrom("[2001:db8:1:3::a]:1005")
	v6a.retainAck("com.v6.a", "a")
	v6b.retainAck("com.v6.b", "b") // same /64
	v6c.retainAck("com.v6.c", "c") // another /64
	e.sync()
	for _, k := range []struct {
		realm, owner string
		events       int
	}{{"trusted", `realm "trusted" authid alice`, 1}, {"trusted", `realm "trusted" authid bob`, 1}, {"realm1", "address 2001:db8:1:2::/64", 1}, {"realm1", "address 2001:db8:1:3::/64", 1}} {
		rm := e.r.Realm(k.realm)
		rm.mu.RLock()
		sh := rm.retainedBy[k.owner]
		rm.mu.RUnlock()
		if sh == nil || sh.events != k.events {
			t.Errorf("%s's share in %s: %+v, want %d events", k.owner, k.realm, sh, k.events)
		}
	}
	var refusedShare uint64
	e.execs[0].do(func() { refusedShare = e.r.Shard(0).stats.RetainRefusedPublisher.Load() })
	if refusedShare != 2 {
		t.Fatalf("refused for the publisher's share %d, want 2 (alice's second, the /64's second)", refusedShare)
	}
}

// The bytes a publisher's retained events hold are bounded too (a few
// large payloads would otherwise take the realm's retained_bytes), and
// are freed when its events are dropped: here by the realm's bound, which
// drops a topic's older event with a refused one.
func TestRetainedShareBytes(t *testing.T) {
	e := newEnv(t, 1, func(c *Config) { c.MaxRetainedBytes = 64 << 10; c.MaxRetainedBytesPerPublisher = 16 << 10 })
	x := e.joinFrom("192.0.2.7:40001")
	y := e.joinFrom("198.51.100.9:50000")
	big := strings.Repeat("x", 7<<10)
	x.retainAck("com.x.1", big)
	x.retainAck("com.x.2", big)
	x.retainAck("com.x.3", big) // past X's 16 KiB
	y.retainAck("com.y.1", big)
	want := map[string]any{"com.x.1": big, "com.x.2": big, "com.y.1": big}
	if got := e.retainedTopics(); !sameMap(got, want) {
		t.Fatalf("retained %d topics %v, want com.x.1, com.x.2, com.y.1", len(got), keysOf(got))
	}
	// An event the realm's bound refuses (larger than the realm's 64 KiB)
	// drops its topic's older one, X's, which frees X's share.
	y.retainAck("com.x.1", strings.Repeat("y", 70<<10))
	x.retainAck("com.x.3", big)
	want = map[string]any{"com.x.2": big, "com.x.3": big, "com.y.1": big}
	if got := e.retainedTopics(); !sameMap(got, want) {
		t.Fatalf("retained %v, want com.x.2, com.x.3, com.y.1", keysOf(got))
	}
	var refused, refusedShare uint64
	e.execs[0].do(func() {
		refused = e.r.Shard(0).stats.RetainRefused.Load()
		refusedShare = e.r.Shard(0).stats.RetainRefusedPublisher.Load()
	})
	if refused != 1 || refusedShare != 1 {
		t.Fatalf("refused %d for the realm, %d for the publisher's share; want 1, 1", refused, refusedShare)
	}
}

func sameMap(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// shareEvents returns the retained events each publisher holds in rm.
func shareEvents(rm *Realm) map[string]int {
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	m := map[string]int{}
	for k, sh := range rm.retainedBy {
		m[k] = sh.events
	}
	return m
}
