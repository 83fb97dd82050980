package gateway

import (
	"strconv"
	"testing"
	"time"
)

// A sweep of the failed-authentication limiter's table looks at a bounded
// number of records, however many it holds: it runs under the limiter's
// lock on every request with a credential from an address without a
// record, on net/http or on an event loop's lane (the bridge's calls),
// and every other request with a credential waits for that lock. Before,
// each such request walked the whole table while it was full of live
// records (one failure from each /64 of an attacker's /48 keeps its 65,536
// records so), with no once-a-second cap: 1.6-1.8 ms a request on the
// shared 2-core VM. The aged records are still dropped, a chunk per new
// address while most of a chunk is, so that the table makes room and
// shrinks. Work is measured (records looked at), not time.
func TestFailLimiterSweepBounded(t *testing.T) {
	l := newFailLimiter(5)
	const n = 16 * sweepChunk
	l.max = n
	now := l.origin.Add(time.Hour)
	l.now = func() time.Time { return now }
	// Full of live records: one failure from each /64.
	for i := 0; i < n; i++ {
		a := "2001:db8:" + strconv.FormatUint(uint64(i), 16) + "::"
		v, _ := l.begin(a, false)
		l.end(a, v == failReserved, true)
	}
	if len(l.byAddr) != n {
		t.Fatalf("%d records after failures from %d addresses, want %d", len(l.byAddr), n, n)
	}
	visits := func(at time.Time, addr string) (int, failVerdict) {
		now = at
		before := l.sweepVisits
		v, _ := l.begin(addr, true)
		return l.sweepVisits - before, v
	}
	// New addresses a while later, the records still live: the table is
	// full (they are not counted, as before); one sweep a second, bounded.
	soon := now.Add(1500 * time.Millisecond)
	total := 0
	for i := 0; i < 100; i++ {
		got, v := visits(soon, "198.51.100."+strconv.Itoa(i))
		if v != failUnreserved || got > sweepChunk {
			t.Fatalf("new address %d at a full table of live records: verdict %d, its sweep looked at %d records; want unreserved and at most %d (the table holds %d)",
				i, v, got, sweepChunk, n)
		}
		total += got
	}
	if total > sweepChunk {
		t.Fatalf("100 new addresses within a second at a full table looked at %d records, want at most %d (one sweep a second)", total, sweepChunk)
	}
	// Once they have aged, new addresses are counted again at once, each
	// request's sweep bounded, until the table holds little more than the
	// new addresses (each keeps its reserved place, so its record).
	later := soon.Add(2*failWindowLen + time.Second)
	for i := 0; i < 64; i++ {
		got, v := visits(later, "203.0.113."+strconv.Itoa(i))
		if v != failReserved || got > sweepChunk {
			t.Fatalf("new address %d after the flood aged: verdict %d, its sweep looked at %d records; want reserved and at most %d", i, v, got, sweepChunk)
		}
	}
	if len(l.byAddr) > 64+sweepChunk {
		t.Fatalf("%d records kept after 64 requests from new addresses, the %d aged ones still held", len(l.byAddr), n)
	}
}
