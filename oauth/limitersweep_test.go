package oauth

import (
	"testing"
	"time"
)

// A sweep of the failed-authentication limiter's table looks at a bounded
// number of records, however many it holds: it runs under the limiter's
// lock, which every request to the token, device and authorization
// endpoints takes. Before, each sweep walked the table whole: full of
// live records (one failure from each /64 of an attacker's /44 keeps it
// so), it was swept again for each new source once a second, and a sweep
// of its 2^20 records held the lock 116-117 ms (measured on the shared
// 2-core VM, without -race). The aged records are still dropped, a chunk
// per request while most of a chunk is, so that the table makes room and
// shrinks.
func TestLimiterSweepBounded(t *testing.T) {
	l := newLimiter(AuthLimits{})
	const n = 16 * sweepChunk
	l.max = n
	now := time.Unix(1e9, 0).UnixNano()
	for i := 0; i < n; i++ {
		r := failRec{}
		r.fails.Add(now, l.lim.Window)
		l.m[srcKey{uint64(i) + 1, 1}] = r
	}
	l.sweepAt = 2 * n // as after the fill's last doubling
	visits := func(at int64, key srcKey) (int, bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		before := l.sweepVisits
		_, ok := l.rec(key, at)
		return l.sweepVisits - before, ok
	}
	newcomer := func(i int) srcKey { return srcKey{0, 0xffff<<32 | uint64(i)} }
	// A new source a while later, the records still live: the table is
	// full (the source is not tracked, as before) and swept.
	soon := now + int64(1500*time.Millisecond)
	if got, ok := visits(soon, newcomer(1)); ok || got > sweepChunk {
		t.Fatalf("a new source at a full table of live records: tracked %v, the sweep looked at %d records; want untracked and at most %d (the table holds %d)",
			ok, got, sweepChunk, n)
	}
	// Once they have aged, new sources are tracked again at once, each
	// request's sweep bounded, until the table holds little more than
	// the new sources.
	later := now + int64(l.lim.Window+l.lim.Lockout+time.Minute)
	for i := 0; i < 64; i++ {
		got, ok := visits(later, newcomer(i+2))
		if !ok || got > sweepChunk {
			t.Fatalf("new source %d after the flood aged: tracked %v, the sweep looked at %d records; want tracked and at most %d", i, ok, got, sweepChunk)
		}
		l.mu.Lock()
		l.m[newcomer(i+2)] = failRec{open: 1} // as begin keeps it
		l.mu.Unlock()
	}
	if len(l.m) > 64+sweepChunk {
		t.Fatalf("%d records kept after 64 requests from new sources, the %d aged ones still held", len(l.m), n)
	}
}
