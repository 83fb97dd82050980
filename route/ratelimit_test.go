package route

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func testLimiter(t *testing.T, lim AuthLimits) *authLimiter {
	t.Helper()
	lim, err := lim.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newAuthLimiter(lim)
}

func TestAuthLimiterKeys(t *testing.T) {
	l := testLimiter(t, AuthLimits{Exempt: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}})
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[2001:db8::1]:443", "2001:db8::/64"},
		{"[2001:db8:0:0:ffff::9]:1", "2001:db8::/64"},
		{"[2001:db8:0:1::1]:1", "2001:db8:0:1::/64"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"unix-socket", "unix-socket"},
		{"", ""},
		{"10.1.2.3:4", ""},          // exempt
		{"[::ffff:10.1.2.3]:4", ""}, // exempt, IPv4-mapped
		{"[fd12::1]:4", ""},         // exempt
		{"10.2.0.1:4", "10.2.0.1"},  // not exempt
	} {
		if got := l.key(c.in); got != c.want {
			t.Errorf("key(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Addresses of one /64 share a record: the tenth failure of an authid
	// blocks it from them all.
	now := time.Unix(1e9, 0)
	for i := range DefaultAuthBlockAfter {
		l.settle(l.login("[2001:db8::"+strconv.FormatInt(int64(i+1), 16)+"]:1000", "", "joe"), false, true, now)
	}
	if !l.blocked(l.login("[2001:db8::ffff]:2000", "", "joe"), now) {
		t.Error("the /64 is not blocked for joe after 10 of joe's failures from its addresses")
	}
	if l.blocked(l.login("[2001:db8::ffff]:2000", "", "ann"), now) {
		t.Error("the /64 is blocked for ann after joe's failures")
	}
	if l.blocked(l.login("[2001:db8:0:1::1]:2000", "", "joe"), now) {
		t.Error("the next /64 is blocked too")
	}
	if k := l.login("10.1.2.3:4", "", "joe"); k != (loginKey{}) {
		t.Errorf("an exempt address's login has keys %+v", k)
	}
}

func TestAuthLimiterSweepsExpired(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	start := time.Unix(1e9, 0)
	for i := range limiterMin {
		l.settle(l.keys("10."+strconv.Itoa(i>>16)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), "", ""), false, true, start)
	}
	// One address still has an authentication open: its record is kept.
	if !l.open(l.keys("10.0.0.1", "", ""), start) {
		t.Fatal("open refused")
	}
	// Each later failure from a new address sweeps a chunk of the
	// tables (a sweep is bounded: TestAuthLimiterSweepBounded), and
	// another at the next one while the chunks are mostly idle, until
	// only the live records are left.
	later := start.Add(DefaultAuthWindow + time.Second)
	for i := 1; ; i++ {
		before := l.sweepVisits
		l.settle(l.keys("192.0.2."+strconv.Itoa(i), "", ""), false, true, later)
		if d := l.sweepVisits - before; d > 2*sweepChunk {
			t.Fatalf("failure %d: its sweep looked at %d records, want at most %d", i, d, 2*sweepChunk)
		}
		if n := len(l.addrs) + len(l.ids); n == 1+2*i {
			break // the open address, and the new addresses and their authids
		}
		if i == 2*limiterMin/sweepChunk+16 {
			t.Fatalf("%d records after %d failures from new addresses since every earlier one expired, want %d (the open address, the new addresses and their authids)",
				len(l.addrs)+len(l.ids), i, 1+2*i)
		}
	}
	if l.addrs[l.keys("10.0.0.1", "", "").ak] == nil {
		t.Fatal("the address with an authentication open was swept")
	}
}

// Parallel attempts: at most BlockAfter minus the failures so far are
// checked at a time; the others wait, and are refused once the address is
// locked out, or get their turn when a check succeeds.
func TestAuthLimiterReservations(t *testing.T) {
	l := testLimiter(t, AuthLimits{BlockAfter: 4, DelayAfter: 100})
	now := time.Unix(1e9, 0)
	key := l.keys("192.0.2.9", "", "joe")
	fired := map[int]string{}
	wait := func(i int) *authWait {
		return &authWait{fire: func(ok bool) {
			if _, dup := fired[i]; dup {
				t.Fatalf("wait %d fired twice", i)
			}
			fired[i] = map[bool]string{true: "granted", false: "denied"}[ok]
		}}
	}
	var waits []*authWait
	for i := range 8 {
		w := wait(i)
		waits = append(waits, w)
		v := l.reserve(key, now, w)
		if want := map[bool]verdict{true: granted, false: queued}[i < 4]; v != want {
			t.Fatalf("reserve %d: %v, want %v", i, v, want)
		}
	}
	// A success frees its place for the oldest waiter (4).
	l.settle(key, true, false, now)
	if fired[4] != "granted" || len(fired) != 1 {
		t.Fatalf("after a success: %v", fired)
	}
	// Waiter 5 leaves.
	if !l.cancel(key, waits[5]) || l.cancel(key, waits[5]) {
		t.Fatal("cancel")
	}
	// A failure: 1 failure + 4 checking would exceed 4, so nobody moves up.
	l.settle(key, true, true, now)
	if len(fired) != 1 {
		t.Fatalf("after a failure: %v", fired)
	}
	// Three more failures lock the authid out: its waiters are refused.
	l.settle(key, true, true, now)
	l.settle(key, true, true, now)
	if _, lock := l.settle(key, true, true, now); lock != lockAuthID {
		t.Fatalf("lock %d after 4 failures, want the authid's", lock)
	}
	if fired[6] != "denied" || fired[7] != "denied" {
		t.Fatalf("waiters after the lockout: %v", fired)
	}
	if v := l.reserve(key, now, wait(9)); v != denied {
		t.Fatalf("reserve while locked out: %v", v)
	}
	if l.open(key, now) {
		t.Fatal("open while locked out")
	}
	// After the lockout: a fresh window.
	after := now.Add(DefaultAuthLockout + time.Second)
	if v := l.reserve(key, after, wait(10)); v != granted {
		t.Fatalf("reserve after the lockout: %v", v)
	}
}

func TestAuthLimiterOpenChallenges(t *testing.T) {
	l := testLimiter(t, AuthLimits{MaxOpenChallenges: 3})
	now := time.Unix(1e9, 0)
	for i := range 3 {
		if !l.open(l.keys("192.0.2.1", "", "u"+strconv.Itoa(i)), now) {
			t.Fatalf("open %d refused", i)
		}
	}
	if l.open(l.keys("192.0.2.1", "", "u9"), now) {
		t.Fatal("a fourth open challenge from the address accepted (another authid)")
	}
	if !l.open(l.keys("192.0.2.2", "", "u0"), now) || !l.open(loginKey{}, now) {
		t.Fatal("other addresses are limited too")
	}
	l.close(l.keys("192.0.2.1", "", "u0"))
	if !l.open(l.keys("192.0.2.1", "", "u9"), now) {
		t.Fatal("closing did not free a place")
	}
}

func TestAuthLimitsValidation(t *testing.T) {
	if _, err := (AuthLimits{BlockAfter: -1}).withDefaults(); err == nil {
		t.Fatal("negative block_after accepted")
	}
	lim, err := AuthLimits{}.withDefaults()
	if err != nil || lim.BlockAfter != DefaultAuthBlockAfter || lim.DelayAfter != DefaultAuthDelayAfter || lim.AddressBlockAfter != DefaultAuthAddressBlockAfter ||
		lim.Window != DefaultAuthWindow || lim.Lockout != DefaultAuthLockout || lim.MaxOpenChallenges != DefaultAuthMaxOpenChallenges {
		t.Fatalf("defaults %+v %v", lim, err)
	}
	if _, err := (AuthLimits{BlockAfter: 20, AddressBlockAfter: 19}).withDefaults(); err == nil {
		t.Fatal("address_block_after below block_after accepted")
	}
	if lim, err := (AuthLimits{BlockAfter: 200}).withDefaults(); err != nil || lim.AddressBlockAfter != 200 {
		t.Fatalf("block_after 200: address_block_after %d, %v; want 200", lim.AddressBlockAfter, err)
	}
}

// A flood from as many addresses as the limiter tracks (2^20: an IPv6
// attacker's /44) fills its table. While the flood's records are live,
// an address the table has no room for is refused, not let through
// unlimited (the OAuth2 endpoints' limiter does the same); once they
// have aged, the table makes room again and a new address is tracked:
// its BlockAfter failures lock it out. (The table was never swept again
// once full: sweepAt had doubled past limiterMax, and every new address
// stayed untracked, with no limit on its guesses, until a restart.)
func TestAuthLimiterTableRecovers(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	// A table of 131,072 addresses, not the 1,048,576 of limiterMax: the
	// sweeps still double past the bound (at 65,536 and 131,072), as they
	// did past the real one, in an eighth of the time.
	l.maxAddrs = 2 * limiterMin
	now := time.Unix(1e9, 0)
	for i := 0; i <= l.maxAddrs; i++ {
		k := l.keys("2001:db8:"+strconv.FormatUint(uint64(i), 16)+"::/64", "", "")
		if l.reserve(k, now, nil) == granted {
			l.settle(k, true, true, now)
		}
	}
	newcomer := l.keys("198.51.100.7", "", "")
	if v := l.reserve(newcomer, now, nil); v == granted {
		t.Fatal("an address the full table cannot track got its secret checked")
	}
	later := now.Add(l.lim.Window + l.lim.Lockout + time.Minute)
	for i := range l.lim.BlockAfter {
		if v := l.reserve(newcomer, later, nil); v != granted {
			t.Fatalf("attempt %d of a new address long after the flood: verdict %d, want granted", i, v)
		}
		l.settle(newcomer, true, true, later)
	}
	if !l.blocked(newcomer, later) {
		t.Fatalf("%d failures of a new address long after the flood did not lock it out: the limiter no longer tracks new addresses", l.lim.BlockAfter)
	}
}

// The waits of one address: an authid whose own bound is reached waits
// without holding up the address's other authids (no head-of-line
// blocking), its own later attempts wait behind it, and the address's
// bound holds for all of them together.
func TestAuthLimiterWaitsPerAuthID(t *testing.T) {
	l := testLimiter(t, AuthLimits{BlockAfter: 2, AddressBlockAfter: 4, DelayAfter: 100})
	now := time.Unix(1e9, 0)
	fired := map[string]bool{}
	wait := func(name string) *authWait {
		return &authWait{fire: func(ok bool) { fired[name] = ok }}
	}
	joe, ann, bea := l.keys("192.0.2.50", "", "joe"), l.keys("192.0.2.50", "", "ann"), l.keys("192.0.2.50", "", "bea")
	for _, c := range []struct {
		k    loginKey
		name string
		want verdict
	}{
		{joe, "joe1", granted}, {joe, "joe2", granted}, {joe, "joe3", queued}, // joe's bound
		{ann, "ann1", granted}, // not behind joe3
		{ann, "ann2", granted}, // the address's bound (4) reached
		{bea, "bea1", queued},
		{joe, "joe4", queued},
	} {
		if v := l.reserve(c.k, now, wait(c.name)); v != c.want {
			t.Fatalf("reserve %s: %d, want %d", c.name, v, c.want)
		}
	}
	// ann1 succeeds: the address has room for one; joe3 (first in line)
	// still has no room of its own, bea1 gets the place.
	l.settle(ann, true, false, now)
	if len(fired) != 1 || !fired["bea1"] {
		t.Fatalf("after ann1's success: %v, want bea1 granted", fired)
	}
	// joe1 fails: joe's room is 2 - (1 failure + 1 checking) = 0, and the
	// address's 4 - (1 + 3) = 0: nobody moves.
	l.settle(joe, true, true, now)
	if len(fired) != 1 {
		t.Fatalf("after joe1's failure: %v", fired)
	}
	// joe2 fails: joe is locked out, joe3 and joe4 refused.
	if _, lock := l.settle(joe, true, true, now); lock != lockAuthID {
		t.Fatalf("lock %d after joe's second failure, want the authid's", lock)
	}
	if ok, in := fired["joe3"]; !in || ok {
		t.Fatalf("joe3 after joe's lockout: %v", fired)
	}
	if ok, in := fired["joe4"]; !in || ok {
		t.Fatalf("joe4 after joe's lockout: %v", fired)
	}
	if l.blocked(ann, now) || !l.blocked(joe, now) {
		t.Fatal("ann blocked, or joe not")
	}
	// Two more failures (ann2, bea1) reach the address's bound: every
	// authid is locked out there, a new one too.
	l.settle(ann, true, true, now)
	if _, lock := l.settle(bea, true, true, now); lock != lockAddress {
		t.Fatalf("lock %d after the address's fourth failure, want the address's", lock)
	}
	if v := l.reserve(l.keys("192.0.2.50", "", "new"), now, wait("new")); v != denied {
		t.Fatalf("a new authid at a locked-out address: %d, want denied", v)
	}
	if l.blocked(l.keys("192.0.2.51", "", "joe"), now) {
		t.Fatal("another address is blocked")
	}
}

// Records of authids must not let a few addresses fill the limiter's
// table. Before, an address cost the table one record: refusing every new
// address (the untracked state) took a flood from 2^20 addresses. With a
// record per authid, one address could hold a thousand: a cryptosign HELLO
// with an unknown key fails in Challenge, so its MaxOpenChallenges (1024)
// HELLOs opened at once, each naming a new authid, all count as failures,
// whatever the address's lockout. 1024 addresses (an IPv6 /54) then filled
// the table, and since every AUTHENTICATE needs its authid's record, even
// a login whose address was tracked (its challenge open) was refused. The
// authids' records now have their own table: when it is full, an address's
// authids without a record of their own share one (the limits before
// authids were counted), and addresses are tracked as before.
func TestAuthLimiterAuthIDFloodKeepsAddressesTracked(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	// The authids' table holds 8 addresses' worth here, not idsMax (512
	// addresses' worth): a flood from 16 addresses fills it as 1024 fill
	// the real one, in a sixty-fourth of the time.
	l.maxIDs = 8 * l.lim.MaxOpenChallenges
	const floods = 16
	now := time.Unix(1e9, 0)
	ann := l.keys("198.51.100.1", "", "ann") // her challenge is open when the flood starts
	if !l.open(ann, now) {
		t.Fatal("open refused")
	}
	for i := range floods {
		ks := make([]loginKey, 0, l.lim.MaxOpenChallenges)
		for j := range l.lim.MaxOpenChallenges {
			k := l.keys("2001:db8:"+strconv.FormatUint(uint64(i), 16)+"::/64", "", strconv.Itoa(j))
			if !l.open(k, now) {
				break // (refused: the table is full)
			}
			ks = append(ks, k)
		}
		for _, k := range ks {
			l.settle(k, false, true, now) // a failed Challenge
			l.close(k)
		}
		if len(ks) >= l.lim.AddressBlockAfter && !l.blocked(ks[0], now) {
			t.Fatalf("address %d not locked out after %d failures", i, len(ks))
		}
	}
	if n := len(l.ids); n < l.maxIDs {
		t.Fatalf("the flood left %d authids' records, want the table full (%d)", n, l.maxIDs)
	}
	if v := l.reserve(ann, now, &authWait{fire: func(bool) {}}); v != granted {
		t.Fatalf("ann's AUTHENTICATE during a flood from %d addresses: verdict %d, want granted", floods, v)
	}
	l.settle(ann, true, false, now)
	l.close(ann)
	newcomer := l.keys("198.51.100.2", "", "bob")
	if !l.open(newcomer, now) {
		t.Fatalf("a new address's HELLO refused during a flood from %d addresses", floods)
	}
	// The authids that get no record of their own are still limited: bob's
	// BlockAfter failures lock him out at his address.
	for i := range l.lim.BlockAfter {
		if v := l.reserve(newcomer, now, &authWait{fire: func(bool) {}}); v != granted {
			t.Fatalf("bob's attempt %d: verdict %d, want granted", i, v)
		}
		l.settle(newcomer, true, true, now)
	}
	if !l.blocked(newcomer, now) {
		t.Fatalf("%d failures of bob during the flood did not lock him out", l.lim.BlockAfter)
	}
	if v := l.reserve(newcomer, now, &authWait{fire: func(bool) {}}); v != denied {
		t.Fatalf("bob's attempt after his lockout: verdict %d, want denied", v)
	}
	l.close(newcomer)
}

// When the authids' table is full, an address's authids without a record
// of their own share its shared record, and go on sharing it while it is
// in use even once the table has room again: an authid's places and
// failures are then always in one record, which settle releases.
func TestAuthLimiterSharedAuthIDRecord(t *testing.T) {
	l := testLimiter(t, AuthLimits{BlockAfter: 2, AddressBlockAfter: 10, DelayAfter: 100})
	l.maxIDs = 2
	now := time.Unix(1e9, 0)
	nop := &authWait{fire: func(bool) {}}
	// Two failures elsewhere fill the authids' table.
	l.settle(l.keys("192.0.2.1", "", "a"), false, true, now)
	l.settle(l.keys("192.0.2.1", "", "b"), false, true, now)
	joe, ann := l.keys("192.0.2.2", "", "joe"), l.keys("192.0.2.2", "", "ann")
	if v := l.reserve(joe, now, nop); v != granted {
		t.Fatalf("joe with the authids' table full: %d, want granted", v)
	}
	// The table makes room (its records age), but joe's place is in the
	// shared record: ann shares it too, and the bound (2) holds for both.
	later := now.Add(l.lim.Window + time.Second)
	l.sweepAt = 0
	if v := l.reserve(ann, later, nop); v != granted {
		t.Fatalf("ann: %d, want granted", v)
	}
	if len(l.ids) != 0 {
		t.Fatalf("%d authid records, want the aged ones swept and none made while the shared one is in use", len(l.ids))
	}
	fired := map[string]bool{}
	if v := l.reserve(joe, later, &authWait{fire: func(ok bool) { fired["joe2"] = ok }}); v != queued {
		t.Fatalf("joe's second attempt: %d, want queued (the shared record's bound)", v)
	}
	l.settle(joe, true, true, later)
	if _, lock := l.settle(ann, true, true, later); lock != lockAuthIDs {
		t.Fatalf("lock %d after 2 failures in the shared record, want lockAuthIDs", lock)
	}
	if ok, in := fired["joe2"]; !in || ok {
		t.Fatalf("joe's queued attempt after the shared lockout: %v", fired)
	}
	if !l.blocked(joe, later) || !l.blocked(ann, later) || l.blocked(l.keys("192.0.2.1", "", "a"), later) {
		t.Fatal("the shared lockout: joe or ann not blocked, or another address blocked")
	}
	a := l.addrs[l.keys("192.0.2.2", "", "").ak]
	if a.checking != 0 || a.shared.checking != 0 {
		t.Fatalf("places left: address %d, shared %d", a.checking, a.shared.checking)
	}
	// Once the shared record is idle, authids get records of their own.
	after := later.Add(l.lim.Lockout + l.lim.Window + time.Second)
	if v := l.reserve(ann, after, nop); v != granted || l.ids[ann.id] == nil || l.ids[ann.id].checking != 1 {
		t.Fatalf("ann after the shared lockout: %d, own record %v", v, l.ids[ann.id])
	}
	l.settle(ann, true, false, after)
	if !a.idle(after, l.lim.Window) || !l.ids[ann.id].idle(after, l.lim.Window) {
		t.Fatal("records not idle once every attempt has settled")
	}
}

// Spraying is slowed down as guessing one authid is: past the address's
// share of delays (DelayAfter × AddressBlockAfter / BlockAfter, 30 at the
// defaults), each failure from the address, whatever its authid, is
// answered later (half a second more each, at most 5 s). Before, a guess
// for each of many authids was answered at once until the lockout.
func TestAuthLimiterSprayingDelayed(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	now := time.Unix(1e9, 0)
	for i := range 40 {
		d, _ := l.settle(l.keys("192.0.2.60", "", "u"+strconv.Itoa(i)), false, true, now)
		want := time.Duration(0)
		if n := i + 1; n > 30 {
			want = min(time.Duration(n-30)*500*time.Millisecond, maxDelay)
		}
		if d != want {
			t.Fatalf("failure %d (a new authid each): delay %v, want %v", i+1, d, want)
		}
	}
	// The address's other logins are not delayed: only failures are.
	if d, _ := l.settle(l.keys("192.0.2.60", "", "u0"), false, false, now); d != 0 {
		t.Fatalf("a success from the address: delay %v", d)
	}
}

// logCut keeps a log line's client-chosen text to 64 bytes without
// splitting a UTF-8 character (a plain [:64] could leave half of one).
func TestLogCut(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 100), strings.Repeat("a", 64)},
		{strings.Repeat("a", 63) + "é" + "tail", strings.Repeat("a", 63)},
		{strings.Repeat("a", 62) + "é" + "tail", strings.Repeat("a", 62) + "é"},
	} {
		if got := logCut(c.in); got != c.want || !utf8.ValidString(got) {
			t.Errorf("logCut(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
