package route

import (
	"strconv"
	"testing"
	"time"
)

// A sweep of the failed-login limiter's tables looks at a bounded number
// of records, however many the tables hold: it runs under the limiter's
// lock, on an event loop (a HELLO's open, an AUTHENTICATE's reserve), and
// every loop's next HELLO waits for that lock. Before, each sweep walked
// both tables whole: with them full of live records (an attacker failing
// logins from a /44's /64s keeps them so) every HELLO from a new address
// swept them once a second, and a sweep of 2^19 addresses and 2^19
// authids held the lock 0.43-0.52 s (measured on the shared 2-core VM,
// without -race), stalling the loops' sessions that long every second.
// The records that have aged are still dropped, a chunk per operation
// while most of a chunk is, so that the tables make room and shrink.
func TestAuthLimiterSweepBounded(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	const n = 16 * sweepChunk
	l.maxAddrs, l.maxIDs = n, n
	now := time.Unix(1e9, 0)
	// Full of live records: one failure of one authid from each /64.
	l.mu.Lock()
	for i := 0; i < n; i++ {
		k := l.keys("2001:db8:"+strconv.FormatUint(uint64(i), 16)+"::/64", "", "x")
		a, p := l.recs(k, now)
		p.fail(now, l.lim, l.lim.BlockAfter)
		a.fail(now, l.lim, l.lim.AddressBlockAfter)
	}
	l.mu.Unlock()
	if len(l.addrs) != n || len(l.ids) != n {
		t.Fatalf("%d addresses, %d authids; want %d each", len(l.addrs), len(l.ids), n)
	}
	visits := func(at time.Time, addr string) (int, verdict) {
		before := l.sweepVisits
		v := l.reserve(l.keys(addr, "", "y"), at, &authWait{fire: func(bool) {}})
		return l.sweepVisits - before, v
	}
	// A new address a while later, the records still live: the table is
	// full (the address is refused untracked, as before) and swept.
	soon := now.Add(1500 * time.Millisecond)
	if got, v := visits(soon, "198.51.100.1"); v != untracked || got > 2*sweepChunk {
		t.Fatalf("a new address at a full table of live records: verdict %d, the sweep looked at %d records; want untracked and at most %d (the tables hold %d)",
			v, got, 2*sweepChunk, 2*n)
	}
	// Once they have aged, new addresses are tracked again at once, and
	// each operation's sweep stays bounded while it drops the aged
	// records, until the tables hold little more than the new ones.
	later := now.Add(l.lim.Window + l.lim.Lockout + time.Minute)
	for i := 0; i < 64; i++ {
		got, v := visits(later, "198.51.100."+strconv.Itoa(i+2))
		if v != granted || got > 2*sweepChunk {
			t.Fatalf("new address %d after the flood aged: verdict %d, the sweep looked at %d records; want granted and at most %d", i, v, got, 2*sweepChunk)
		}
	}
	if len(l.addrs) > 64+sweepChunk || len(l.ids) > 64+sweepChunk {
		t.Fatalf("%d addresses and %d authids kept after 64 logins from new addresses, the %d aged ones still held", len(l.addrs), len(l.ids), n)
	}
}

// While the tables are full and part of their records have aged, new
// addresses are tracked as long as aged records remain to make room,
// not only as many a second as one bounded sweep found: README's limits
// table refuses a new address while the addresses' records are all live.
// Before, a full table was swept at most once a second, one chunk of
// each table since the sweep was bounded: with 40% of the records aged,
// a sweep freed about 400 places, and the rest of that second's new
// addresses were refused (a flood needed only to keep half of the
// records live, and take the few hundred places a second freed, where
// it needed all of them live before the bound).
func TestAuthLimiterFullTableMakesRoomFromAgedRecords(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	const n = 16 * sweepChunk
	l.maxAddrs, l.maxIDs = n, n
	old := time.Unix(1e9, 0)
	recent := old.Add(l.lim.Window + l.lim.Lockout + time.Minute)
	aged := n * 4 / 10
	l.mu.Lock()
	for i := 0; i < n; i++ {
		at := recent // live at the test's time
		if i < aged {
			at = old // idle at the test's time
		}
		k := l.keys("2001:db8:"+strconv.FormatUint(uint64(i), 16)+"::/64", "", "x")
		a, p := l.recs(k, at)
		p.fail(at, l.lim, l.lim.BlockAfter)
		a.fail(at, l.lim, l.lim.AddressBlockAfter)
	}
	l.mu.Unlock()
	// 2,000 new addresses within one second, fewer than the aged records.
	const newAddrs = 2000
	refused, most := 0, 0
	for i := 0; i < newAddrs; i++ {
		at := recent.Add(time.Second + time.Duration(i)*400*time.Microsecond)
		before := l.sweepVisits
		addr := "198.51." + strconv.Itoa(100+i/250) + "." + strconv.Itoa(i%250)
		if v := l.reserve(l.keys(addr, "", "y"), at, &authWait{fire: func(bool) {}}); v == untracked {
			refused++
		}
		most = max(most, l.sweepVisits-before)
	}
	if most > 2*sweepChunk {
		t.Errorf("an operation's sweep looked at %d records; want at most %d", most, 2*sweepChunk)
	}
	// A chunk starts at a random place of the map (Go's walk), so one
	// can land on places already swept and refilled by newcomers, find
	// nothing idle, and its newcomer is refused: 1 of 2,000 in about one
	// run in 30 (measured over 300). Before the fix, 1,574 of 2,000.
	if refused > newAddrs/100 {
		t.Errorf("%d of %d new addresses refused within a second while the full tables held %d aged records of %d", refused, newAddrs, 2*aged, 2*n)
	}
	// Full of live records, the sweeps of a second stay bounded however
	// many new addresses come (each refused).
	later := recent.Add(3 * time.Second)
	l.mu.Lock()
	for i := 0; len(l.addrs) < n; i++ {
		k := l.keys("2001:db8:1:"+strconv.FormatUint(uint64(i), 16)+"::/64", "", "x")
		a, p := l.recs(k, later)
		p.fail(later, l.lim, l.lim.BlockAfter)
		a.fail(later, l.lim, l.lim.AddressBlockAfter)
	}
	l.mu.Unlock()
	before := l.sweepVisits
	for i := 0; i < 1000; i++ {
		l.reserve(l.keys("203.0."+strconv.Itoa(113+i/250)+"."+strconv.Itoa(i%250), "", "y"), later.Add(time.Duration(i)*time.Millisecond), &authWait{fire: func(bool) {}})
	}
	if got := l.sweepVisits - before; got > fullSweepsPerSecond*2*sweepChunk {
		t.Errorf("1,000 new addresses in a second at full tables of live records: the sweeps looked at %d records; want at most %d", got, fullSweepsPerSecond*2*sweepChunk)
	}
}
