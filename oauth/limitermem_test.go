package oauth

import (
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// limiterBytesPerSource fills a limiter with n sources, each an IPv6 /64
// that failed once (as an attacker holding a /44 fills the real table),
// and returns the heap the table holds per source.
func limiterBytesPerSource(t *testing.T, n int) float64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := newLimiter(AuthLimits{})
	l.max = n
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < n; i++ {
		src := l.sourceOf("[2001:db8:" + strconv.FormatInt(int64(i>>16), 16) + ":" + strconv.FormatInt(int64(i&0xffff), 16) + "::1]:4711")
		if ok, _ := l.begin(src, now); !ok {
			t.Fatalf("source %d refused", i)
		}
		l.end(src, now, true)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(l.m) != n {
		t.Fatalf("%d sources tracked, want %d", len(l.m), n)
	}
	runtime.KeepAlive(l)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
}

// A full table is what one holder of an IPv6 /44 (2^20 /64s) makes the
// OAuth2 server hold, twice (client and user-code failures; device
// authorizations), on boards of 256-512 MiB: a record must be small.
// Measured at 2^16 sources (the per-source cost at 2^20 is the same: the
// map's load is the same at every power of two): 96 bytes with a 24-byte
// record, 112 with the sliding window's 32-byte one.
func TestLimiterMemoryPerSource(t *testing.T) {
	// The least of up to three fills: another goroutine of the test binary
	// (a router an earlier test left closing) can grow the heap during one.
	per := limiterBytesPerSource(t, 1<<16)
	for i := 0; i < 2 && per > 128; i++ {
		per = min(per, limiterBytesPerSource(t, 1<<16))
	}
	t.Logf("%.1f bytes a source, %.1f MiB at limiterMax", per, per*limiterMax/(1<<20))
	if per > 128 {
		t.Fatalf("%.1f bytes a source (%.0f MiB at limiterMax %d), want at most 128", per, per*limiterMax/(1<<20), limiterMax)
	}
}

// A device authorization that the node's budget refuses is refused for
// every address alike: it must leave no record of its address behind, or
// many /64s asking while the budget is spent fill the limiter's table.
func TestDeviceAuthorizationRefusedByBudgetNotRecorded(t *testing.T) {
	e := startEnv(t, nil)
	e.srv.deviceAuths.max = 1
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 200 {
		t.Fatalf("the first device authorization: %d %v", st, body)
	}
	for i := 0; i < 8; i++ {
		e.fresh()
		if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 429 || body["error"] != "slow_down" {
			t.Fatalf("address %d past the node's budget: %d %v, want 429 slow_down", i, st, body)
		}
	}
	e.srv.issues.mu.Lock()
	n := len(e.srv.issues.m)
	e.srv.issues.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d addresses recorded after 1 device authorization and 8 refused by the node's budget, want 1", n)
	}
	// The next minute the node issues again (a second more: the minute
	// slides, and the one authorization counts whole for exactly a minute).
	e.clock.Advance(time.Minute + time.Second)
	if st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", ""); st != 200 {
		t.Fatalf("the next minute: %d %v", st, body)
	}
}
