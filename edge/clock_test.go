package edge

import (
	"testing"
	"time"
)

// peerClock: the least difference between this node's clock and a peer's
// stamps, kept through a stop of this node and through a slow catch-up,
// lowered by a quicker message, following drift.
func TestPeerClock(t *testing.T) {
	const hb = int64(500 * time.Millisecond)
	const offset = int64(7 * time.Hour) // the two clocks' origins differ
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	var c peerClock
	if _, ok := c.late(0, 0); ok {
		t.Fatal("a clock with no message knows lateness")
	}
	stamp := int64(time.Minute)
	// A young node: its first heartbeats waited 700 ms behind its start.
	for i := 0; i < 3; i++ {
		c.observe(stamp, stamp+offset+ms(700))
		stamp += hb
	}
	// Then heartbeats 1–3 ms on the way: the estimate comes down.
	for i := 0; i < 20; i++ {
		c.observe(stamp, stamp+offset+ms(1+int64(i%3)))
		stamp += hb
	}
	// (The estimate rises by up to 0.5 ms a heartbeat, toward the 1–3 ms
	// trips: the quickest trip within a few heartbeats.)
	if late, _ := c.late(stamp, stamp+offset+ms(301)); late < 298*time.Millisecond || late > 300*time.Millisecond {
		t.Fatalf("a query 301 ms on its way: late %v, want 298–300ms (past the quickest trip, 1–3 ms)", late)
	}
	if late, _ := c.late(stamp, stamp+offset); late != 0 {
		t.Fatalf("a query quicker than every heartbeat: late %v, want 0", late)
	}

	// This node stops for 10 s; then it handles the 20 heartbeats and the
	// query sent meanwhile within 5 ms. The query, sent 1 s into the
	// stop, is 9 s late.
	resume := stamp + offset + ms(10_000)
	qstamp := stamp + ms(1000)
	var lateQ time.Duration
	for i := int64(0); i < 20; i++ {
		if stamp > qstamp && lateQ == 0 {
			lateQ, _ = c.late(qstamp, resume+i*ms(1)/4)
		}
		c.observe(stamp, resume+i*ms(1)/4)
		stamp += hb
	}
	if lateQ < 8990*time.Millisecond || lateQ > 9010*time.Millisecond {
		t.Fatalf("a query handled 9 s after it was sent, this node stopped: late %v, want 9s", lateQ)
	}

	// Far behind: this node's queue is 10 s long and drains at 1.5 times
	// the pace heartbeats come, over 30 s. A query sent when the queue
	// was 5 s long is handled 5 s late, however slowly it drained.
	behind := ms(10_000)
	for i := 0; i < 60; i++ {
		if i == 30 {
			if late, _ := c.late(stamp, stamp+offset+behind+ms(1)); late < 4900*time.Millisecond {
				t.Fatalf("a query 5 s behind in a queue draining slowly: late %v, want about 5s", late)
			}
		}
		c.observe(stamp, stamp+offset+behind+ms(1))
		behind = max(behind-hb/3, 0)
		stamp += hb
	}

	// Drift: this node's clock gains 100 µs a second on the peer's, for
	// an hour: lateness stays within a few heartbeats' drift.
	drift := int64(0)
	for i := 0; i < 7200; i++ {
		drift += int64(50 * time.Microsecond)
		c.observe(stamp, stamp+offset+behind+drift+ms(1))
		stamp += hb
	}
	if late, _ := c.late(stamp, stamp+offset+behind+drift+ms(1)); late > time.Millisecond {
		t.Fatalf("after an hour's drift of 360 ms: late %v, want under 1ms", late)
	}
}

func TestQueryStamp(t *testing.T) {
	for _, tc := range []struct {
		tail  string
		stamp int64
		wait  time.Duration
		boot  uint64
		ok    bool
	}{
		{".a.17.123456789.500.ff", 123456789, 500 * time.Millisecond, 255, true},
		{".a.17", 0, 0, 0, false},                  // a release before the stamps
		{".a.17.x.500.ff", 0, 0, 0, false},         // malformed
		{".a.17.5.0.ff", 0, 0, 0, false},           // no wait
		{".a.17.-5.500.ff", 0, 0, 0, false},        // negative
		{".a.17.5.99999999999.ff", 0, 0, 0, false}, // absurd wait
		{".a.17.5.500", 0, 0, 0, false},            // no boot
		{".a.17.5.500.zz", 0, 0, 0, false},         // bad boot
		{".m", 0, 0, 0, false},                     // not a query's reply
		{".a.17.5.500.ff.extra", 0, 0, 0, false},   // junk after
	} {
		stamp, wait, boot, ok := queryStamp(tc.tail)
		if ok != tc.ok || ok && (stamp != tc.stamp || wait != tc.wait || boot != tc.boot) {
			t.Errorf("queryStamp(%q) = %d, %v, %x, %v; want %d, %v, %x, %v", tc.tail, stamp, wait, boot, ok, tc.stamp, tc.wait, tc.boot, tc.ok)
		}
	}
	// What Gather sends parses back.
	n := &Node{inbox: nodeInbox("a"), boot: 0xabc}
	n.opts.GatherTimeout = 400 * time.Millisecond
	before := clockNow()
	stamp, wait, boot, ok := queryStamp(n.queryReply(9)[len(n.inbox):])
	if !ok || stamp < before || stamp > clockNow() || wait != 400*time.Millisecond || boot != 0xabc {
		t.Fatalf("queryReply %q parsed as %d, %v, %x, %v", n.queryReply(9), stamp, wait, boot, ok)
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
		var stamp int64
		_, _, rest, ok := splitHbSet(tc.c, tc.b)
		if ok {
			stamp, ok = hbStamp(rest)
		}
		if ok != tc.ok || ok && stamp != 12345 {
			t.Errorf("%s: stamp %d, %v; want 12345, %v", tc.name, stamp, ok, tc.ok)
		}
	}
}
