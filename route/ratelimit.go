package route

import (
	"net"
	"sync"
	"time"
)

// authLimiter rate-limits failed authentications per source address: after
// delayAfter failures within failWindow, each further failure is answered
// only after a growing delay; after refuseAfter, HELLOs from the address
// are refused outright for blockFor. Safe for concurrent use; used only on
// the HELLO path (cold).
type authLimiter struct {
	mu      sync.Mutex
	m       map[string]*failRec
	sweepAt int // size at which fail next drops expired records
}

type failRec struct {
	n            int
	first        time.Time
	blockedUntil time.Time
}

const (
	failWindow  = time.Minute
	delayAfter  = 3
	refuseAfter = 10
	blockFor    = 5 * time.Minute
	maxDelay    = 5 * time.Second
	limiterMin  = 65536 // records kept before the first sweep of expired ones
	limiterMax  = 1 << 20
)

func newAuthLimiter() *authLimiter {
	return &authLimiter{m: map[string]*failRec{}, sweepAt: limiterMin}
}

// host returns the key of a remote address: its IPv4 address, or the /64
// of an IPv6 one (one host, or one customer, gets a whole /64 and could
// otherwise try from 2^64 addresses).
func host(remote string) string {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		h = remote
	}
	ip := net.ParseIP(h)
	switch {
	case ip == nil:
		return h
	case ip.To4() != nil:
		return ip.To4().String() // IPv4, also when IPv4-mapped
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// blocked reports whether HELLOs from addr are refused at now.
func (l *authLimiter) blocked(addr string, now time.Time) bool {
	if addr == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[host(addr)]
	return r != nil && now.Before(r.blockedUntil)
}

// fail records a failure and returns how long to delay its answer, and
// whether the address just got blocked.
func (l *authLimiter) fail(addr string, now time.Time) (delay time.Duration, blockedNow bool) {
	if addr == "" {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= l.sweepAt {
		// Amortized: the next sweep waits until the table has doubled.
		for k, r := range l.m {
			if now.Sub(r.first) > failWindow && now.After(r.blockedUntil) {
				delete(l.m, k)
			}
		}
		l.sweepAt = max(2*len(l.m), limiterMin)
	}
	h := host(addr)
	r := l.m[h]
	if r == nil && len(l.m) >= limiterMax {
		return maxDelay, false // full of live records: answer slowly, track no more
	}
	if r == nil || now.Sub(r.first) > failWindow {
		r = &failRec{first: now}
		l.m[h] = r
	}
	r.n++
	if r.n >= refuseAfter && now.After(r.blockedUntil) {
		r.blockedUntil = now.Add(blockFor)
		blockedNow = true
	}
	if r.n > delayAfter {
		delay = time.Duration(r.n-delayAfter) * 500 * time.Millisecond
		if delay > maxDelay {
			delay = maxDelay
		}
	}
	return delay, blockedNow
}
