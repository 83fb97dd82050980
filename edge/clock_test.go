package edge

import (
	"testing"
	"time"
)

// peerClock: the least difference between this node's clock and a peer's
// stamps, kept through a backlog of this node, followed through drift and
// a jump of the peer's clock.
func TestPeerClock(t *testing.T) {
	const hb = int64(500 * time.Millisecond)
	const offset = int64(7 * time.Hour) // the two clocks' origins differ
	var c peerClock
	if _, ok := c.late(0, 0); ok {
		t.Fatal("a clock with no heartbeat knows lateness")
	}
	stamp := int64(time.Minute)
	beat := func(local int64) {
		c.observe(stamp, local)
		stamp += hb
	}
	// Steady heartbeats, 1–3 ms on the way.
	for i := 0; i < 20; i++ {
		beat(stamp + offset + int64(time.Duration(1+i%3)*time.Millisecond))
	}
	if late, _ := c.late(stamp, stamp+offset+int64(301*time.Millisecond)); late != 300*time.Millisecond {
		t.Fatalf("a query 301 ms on its way: late %v, want 300ms (past the quickest trip, 1 ms)", late)
	}
	if late, _ := c.late(stamp, stamp+offset); late != 0 {
		t.Fatalf("a query quicker than every heartbeat: late %v, want 0", late)
	}

	// This node stops for 10 s; then it handles the 20 heartbeats and the
	// query sent meanwhile within 5 ms: a backlog. The query, sent 1 s
	// into the stop, is 9 s late, whatever the heartbeats around it say.
	resume := stamp + offset + int64(10*time.Second)
	qstamp := stamp + int64(time.Second)
	var lateQ time.Duration
	for i := 0; i < 20; i++ {
		if stamp > qstamp && lateQ == 0 {
			lateQ, _ = c.late(qstamp, resume+int64(i)*int64(250*time.Microsecond))
		}
		beat(resume + int64(i)*int64(250*time.Microsecond))
	}
	if lateQ < 8900*time.Millisecond || lateQ > 9100*time.Millisecond {
		t.Fatalf("a query handled 9 s after it was sent, this node stopped: late %v, want about 9s", lateQ)
	}

	// Caught up, heartbeats arrive at their pace again: the estimate
	// stays (the least difference is the one from before the stop).
	for i := 0; i < 20; i++ {
		beat(stamp + offset + int64(time.Millisecond))
	}
	if late, _ := c.late(stamp, stamp+offset+int64(101*time.Millisecond)); late != 100*time.Millisecond {
		t.Fatalf("after the backlog: late %v, want 100ms", late)
	}

	// The peer's clock stops for 3 s (a suspended host): from then on its
	// stamps are 3 s behind. Within clockRing heartbeats at their pace,
	// lateness is back to the trip's.
	skew := int64(3 * time.Second)
	for i := 0; i < clockRing; i++ {
		beat(stamp + offset + skew + int64(time.Millisecond))
	}
	if late, _ := c.late(stamp, stamp+offset+skew+int64(51*time.Millisecond)); late != 50*time.Millisecond {
		t.Fatalf("after the peer's clock jumped: late %v, want 50ms", late)
	}

	// Drift: this node's clock gains 100 µs a second on the peer's (a
	// poor crystal), for an hour. Lateness stays within the drift of a
	// few heartbeats.
	drift := int64(0)
	for i := 0; i < 7200; i++ {
		drift += int64(50 * time.Microsecond)
		beat(stamp + offset + skew + drift + int64(time.Millisecond))
	}
	if late, _ := c.late(stamp, stamp+offset+skew+drift+int64(time.Millisecond)); late > time.Millisecond {
		t.Fatalf("after an hour's drift of 360 ms: late %v, want under 1ms", late)
	}
}

func TestQueryStamp(t *testing.T) {
	for _, tc := range []struct {
		tail  string
		stamp int64
		wait  time.Duration
		ok    bool
	}{
		{".a.17.123456789.500", 123456789, 500 * time.Millisecond, true},
		{".a.17", 0, 0, false},               // a release before the stamps
		{".a.17.x.500", 0, 0, false},         // malformed
		{".a.17.5.0", 0, 0, false},           // no wait
		{".a.17.-5.500", 0, 0, false},        // negative
		{".a.17.5.99999999999", 0, 0, false}, // absurd wait
		{".m", 0, 0, false},                  // not a query's reply
		{".a.17.5.500.extra", 0, 0, false},   // junk after
	} {
		stamp, wait, ok := queryStamp(tc.tail)
		if ok != tc.ok || ok && (stamp != tc.stamp || wait != tc.wait) {
			t.Errorf("queryStamp(%q) = %d, %v, %v; want %d, %v, %v", tc.tail, stamp, wait, ok, tc.stamp, tc.wait, tc.ok)
		}
	}
	// A query quicker than every heartbeat lowers the estimate (a young
	// node's first heartbeats waited behind its start); a slower one does
	// not raise it.
	var y peerClock
	y.observe(1000, 1000+int64(700*time.Millisecond))
	y.lower(2000, 2000+int64(5*time.Millisecond))
	y.lower(3000, 3000+int64(900*time.Millisecond))
	if late, _ := y.late(4000, 4000+int64(405*time.Millisecond)); late != 400*time.Millisecond {
		t.Fatalf("after a quick query: late %v, want 400ms", late)
	}

	// The deadline: a fifth of the wait left for the answer's way back.
	var c peerClock
	c.observe(1000, 5000) // base 4000
	now := time.Unix(100, 0)
	if d := queryDeadline(&c, 2000, 500*time.Millisecond, 6000+int64(100*time.Millisecond), now); !d.Equal(now.Add(300 * time.Millisecond)) {
		t.Fatalf("deadline of a query 100 ms late, 500 ms wait: %v, want now + 300ms", d.Sub(now))
	}
	if d := queryDeadline(&peerClock{}, 2000, 500*time.Millisecond, 6000, now); !d.IsZero() {
		t.Fatalf("deadline with the peer's clock unknown: %v, want none", d)
	}
}

// A heartbeat's stamp follows its peer set, whichever form the set takes;
// a heartbeat of a release before the stamps has none.
func TestHeartbeatStamp(t *testing.T) {
	var list, digest, many, old, cut wr
	list = append(list, hbSetList)
	list.fixed64(1)
	list.fixed64(2)
	list.uv(12345)
	digest = append(digest, hbSetDigest)
	digest.fixed64(99)
	digest.uv(12345)
	many.uv(12345) // past maxHashedPeers: the count alone, then the stamp
	old = append(old, hbSetList)
	old.fixed64(1)
	old.fixed64(2)
	cut = append(cut, hbSetList)
	cut.fixed64(1)
	for _, tc := range []struct {
		name string
		c    uint64
		b    []byte
		ok   bool
	}{
		{"list", 2, list, true},
		{"digest", 2, digest, true},
		{"count only", maxHashedPeers + 1, many, true},
		{"older release", 2, old, false},
		{"older release, count only", 2, nil, false},
		{"short list", 2, cut, false},
		{"unknown kind", 2, []byte{9, 1, 2}, false},
	} {
		stamp, ok := hbStamp(tc.c, tc.b)
		if ok != tc.ok || ok && stamp != 12345 {
			t.Errorf("%s: stamp %d, %v; want 12345, %v", tc.name, stamp, ok, tc.ok)
		}
	}
}
