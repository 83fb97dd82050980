package gateway

import (
	"strconv"
	"testing"
	"time"
)

// The replay cache of signed requests drops its expired entries with
// bounded work per request, however many it holds: it is taken under its
// lock by every signed request, on net/http or on an event loop's lane
// (the bridge's calls). Before, a request at a bound (a signing key at its
// share, or the cache full) walked the whole cache once a second, and the
// cache's growth walked it at each doubling: 100-125 ms at its 2^20
// entries, 127 ms for the walk at 2^19 (measured on the shared 2-core VM,
// without -race), each time a loop's other connections stalled. One key
// holder at its share (65,536 requests within the timestamp window) had
// every signed request of the others walk the cache once a second. Work is
// measured (entries looked at), not time.
func TestNonceCacheSweepBounded(t *testing.T) {
	const n = 16 * sweepChunk
	c := newNonceCache(n)
	now := time.Unix(1e9, 0)
	c.now = func() time.Time { return now }
	// Full of live entries of 16 keys, their expiries spread over the
	// next five minutes (as timestamps within the window give).
	visits := func(at time.Time, owner, k string, exp time.Time) (int, nonceResult) {
		now = at
		before := c.sweepVisits
		r := c.add(owner, k, exp)
		return c.sweepVisits - before, r
	}
	for i := range n {
		exp := now.Add(time.Minute + time.Duration(i%300)*time.Second)
		if got, r := visits(now, "k"+strconv.Itoa(i%16), "n"+strconv.Itoa(i), exp); r != nonceOK || got > sweepChunk {
			t.Fatalf("entry %d: %d, it looked at %d entries; want taken, at most %d", i, r, got, sweepChunk)
		}
	}
	// New requests a while later, the entries still live: refused (the
	// cache is full), each looking at a bounded number of entries.
	soon := now.Add(1500 * time.Millisecond)
	total := 0
	for i := range 100 {
		got, r := visits(soon, "new", "x"+strconv.Itoa(i), soon.Add(5*time.Minute))
		if r != nonceFull || got > sweepChunk {
			t.Fatalf("request %d at a full cache of live entries: %d, it looked at %d entries; want refused (%d), at most %d (the cache holds %d)",
				i, r, got, nonceFull, sweepChunk, n)
		}
		total += got
	}
	if total > sweepChunk {
		t.Fatalf("100 requests at a full cache of live entries looked at %d entries, want at most %d", total, sweepChunk)
	}
	// Once they have expired, new requests are taken at once, each
	// looking at a bounded number of entries, until the expired ones are
	// all gone.
	later := now.Add(10 * time.Minute)
	for i := range 64 {
		got, r := visits(later, "new", "y"+strconv.Itoa(i), later.Add(5*time.Minute))
		if r != nonceOK || got > sweepChunk {
			t.Fatalf("request %d after the entries expired: %d, it looked at %d entries; want taken, at most %d", i, r, got, sweepChunk)
		}
	}
	if len(c.seen) > 64+sweepChunk {
		t.Fatalf("%d entries kept after 64 requests, the %d expired ones still held", len(c.seen), n)
	}
}
