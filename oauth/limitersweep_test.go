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

// While the table is full and part of its records have aged, new sources
// are tracked as long as aged records remain to make room, not only as
// many a second as one bounded sweep found. Before, a full table was
// swept at most once a second, one chunk since the sweep was bounded:
// with 40% of the records aged, a sweep freed about 400 places and the
// rest of that second's new sources were answered 429 after 5 s (a flood
// needed only to keep half of the records live and take the few hundred
// places a second freed, where it needed all of them live before).
func TestLimiterFullTableMakesRoomFromAgedRecords(t *testing.T) {
	l := newLimiter(AuthLimits{})
	const n = 16 * sweepChunk
	l.max = n
	old := time.Unix(1e9, 0).UnixNano()
	recent := old + int64(l.lim.Window+l.lim.Lockout+time.Minute)
	aged := n * 4 / 10
	for i := 0; i < n; i++ {
		at := recent // live at the test's time
		if i < aged {
			at = old // idle at the test's time
		}
		r := failRec{}
		r.fails.Add(at, l.lim.Window)
		l.m[srcKey{uint64(i) + 1, 1}] = r
	}
	l.sweepAt = 2 * n // as after the fill's last doubling
	newcomer := func(i int) source { return source{key: srcKey{0, 0xffff<<32 | uint64(i)}} }
	// 2,000 new sources within one second, fewer than the aged records.
	const newSrcs = 2000
	refused, most := 0, 0
	for i := 0; i < newSrcs; i++ {
		at := time.Unix(0, recent+int64(time.Second)+int64(i)*int64(400*time.Microsecond))
		before := l.sweepVisits
		if ok, _ := l.begin(newcomer(i), at); !ok {
			refused++
		}
		most = max(most, l.sweepVisits-before)
	}
	if most > sweepChunk {
		t.Errorf("a request's sweep looked at %d records; want at most %d", most, sweepChunk)
	}
	// A chunk starts at a random place of the map (Go's walk), so one
	// can land on places already swept and refilled by newcomers, find
	// nothing idle, and its newcomer is refused: 1 of 2,000 in about one
	// run in 30 (measured over 300). Before the fix, 1,558 to 1,594.
	if refused > newSrcs/100 {
		t.Errorf("%d of %d new sources refused within a second while the full table held %d aged records of %d", refused, newSrcs, aged, n)
	}
	// Full of live records, the sweeps of a second stay bounded however
	// many new sources come (each refused).
	later := recent + int64(3*time.Second)
	for i := 0; len(l.m) < n; i++ {
		r := failRec{}
		r.fails.Add(later, l.lim.Window)
		l.m[srcKey{uint64(i) + 1, 3}] = r
	}
	before := l.sweepVisits
	for i := 0; i < 1000; i++ {
		l.begin(newcomer(newSrcs+i), time.Unix(0, later+int64(i)*int64(time.Millisecond)))
	}
	if got := l.sweepVisits - before; got > fullSweepsPerSecond*sweepChunk {
		t.Errorf("1,000 new sources in a second at a full table of live records: the sweeps looked at %d records; want at most %d", got, fullSweepsPerSecond*sweepChunk)
	}
}
