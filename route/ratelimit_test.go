package route

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
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
		l.settle(l.login("[2001:db8::"+strconv.FormatInt(int64(i+1), 16)+"]:1000", "joe"), false, true, now)
	}
	if !l.blocked(l.login("[2001:db8::ffff]:2000", "joe"), now) {
		t.Error("the /64 is not blocked for joe after 10 of joe's failures from its addresses")
	}
	if l.blocked(l.login("[2001:db8::ffff]:2000", "ann"), now) {
		t.Error("the /64 is blocked for ann after joe's failures")
	}
	if l.blocked(l.login("[2001:db8:0:1::1]:2000", "joe"), now) {
		t.Error("the next /64 is blocked too")
	}
	if k := l.login("10.1.2.3:4", "joe"); k != (loginKey{}) {
		t.Errorf("an exempt address's login has keys %+v", k)
	}
}

func TestAuthLimiterSweepsExpired(t *testing.T) {
	l := testLimiter(t, AuthLimits{})
	start := time.Unix(1e9, 0)
	for i := range limiterMin {
		l.settle(l.keys("10."+strconv.Itoa(i>>16)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), ""), false, true, start)
	}
	// One address still has an authentication open: its record is kept.
	if !l.open(l.keys("10.0.0.1", ""), start) {
		t.Fatal("open refused")
	}
	later := start.Add(DefaultAuthWindow + time.Second)
	l.settle(l.keys("192.0.2.1", ""), false, true, later)
	if n := len(l.m); n != 3 {
		t.Fatalf("%d records after every earlier one expired, want 3 (the open address, the new address and its authid)", n)
	}
}

// Parallel attempts: at most BlockAfter minus the failures so far are
// checked at a time; the others wait, and are refused once the address is
// locked out, or get their turn when a check succeeds.
func TestAuthLimiterReservations(t *testing.T) {
	l := testLimiter(t, AuthLimits{BlockAfter: 4, DelayAfter: 100})
	now := time.Unix(1e9, 0)
	key := l.keys("192.0.2.9", "joe")
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
		if !l.open(l.keys("192.0.2.1", "u"+strconv.Itoa(i)), now) {
			t.Fatalf("open %d refused", i)
		}
	}
	if l.open(l.keys("192.0.2.1", "u9"), now) {
		t.Fatal("a fourth open challenge from the address accepted (another authid)")
	}
	if !l.open(l.keys("192.0.2.2", "u0"), now) || !l.open(loginKey{}, now) {
		t.Fatal("other addresses are limited too")
	}
	l.close(l.keys("192.0.2.1", "u0"))
	if !l.open(l.keys("192.0.2.1", "u9"), now) {
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
	now := time.Unix(1e9, 0)
	for i := 0; i <= limiterMax; i++ {
		k := l.keys("2001:db8:"+strconv.FormatUint(uint64(i), 16)+"::/64", "")
		if l.reserve(k, now, nil) == granted {
			l.settle(k, true, true, now)
		}
	}
	newcomer := l.keys("198.51.100.7", "")
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
	joe, ann, bea := l.keys("192.0.2.50", "joe"), l.keys("192.0.2.50", "ann"), l.keys("192.0.2.50", "bea")
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
	if v := l.reserve(l.keys("192.0.2.50", "new"), now, wait("new")); v != denied {
		t.Fatalf("a new authid at a locked-out address: %d, want denied", v)
	}
	if l.blocked(l.keys("192.0.2.51", "joe"), now) {
		t.Fatal("another address is blocked")
	}
}
