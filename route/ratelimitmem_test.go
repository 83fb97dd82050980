package route

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// authLimiterBytesPerSource fills a limiter with n addresses, each an IPv6
// /64 whose one authid failed once (as an attacker holding a /44 fills the
// real table), and returns the heap both tables hold per address.
func authLimiterBytesPerSource(t *testing.T, n int) float64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newAuthLimiter(mustLimits(t))
	l.maxAddrs, l.maxIDs = n, n
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < n; i++ {
		k := l.login("[2001:db8:"+strconv.FormatInt(int64(i>>16), 16)+":"+strconv.FormatInt(int64(i&0xffff), 16)+"::1]:4711", "", "alice")
		if v := l.reserve(k, now, &authWait{}); v != granted {
			t.Fatalf("address %d: verdict %d", i, v)
		}
		l.settle(k, true, true, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(l.addrs) != n || len(l.ids) != n {
		t.Fatalf("%d addresses and %d authids tracked, want %d", len(l.addrs), len(l.ids), n)
	}
	runtime.KeepAlive(l)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
}

func mustLimits(t *testing.T) AuthLimits {
	l, err := AuthLimits{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A full table is what one holder of an IPv6 /44 (2^20 /64s) makes the
// router hold, failing one login from each /64: a record must be small.
// Measured at 2^16 addresses (the map's load is the same at every power
// of two), an address with one authid's record.
func TestAuthLimiterMemoryPerSource(t *testing.T) {
	// The least of up to three fills: another goroutine of the test binary
	// (a router an earlier test left closing) can grow the heap during one.
	per := authLimiterBytesPerSource(t, 1<<16)
	for i := 0; i < 2 && per > 272; i++ {
		per = min(per, authLimiterBytesPerSource(t, 1<<16))
	}
	t.Logf("%.1f bytes an address (its record and one authid's)", per)
	if per > 272 {
		t.Fatalf("%.1f bytes an address with one authid's record, want at most 272", per)
	}
}
