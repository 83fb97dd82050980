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
	mu sync.Mutex
	m  map[string]*failRec
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
	limiterMax  = 65536 // entries before a sweep of expired ones
)

func newAuthLimiter() *authLimiter { return &authLimiter{m: map[string]*failRec{}} }

// host strips the port from a remote address.
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
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
	if len(l.m) >= limiterMax {
		for k, r := range l.m {
			if now.Sub(r.first) > failWindow && now.After(r.blockedUntil) {
				delete(l.m, k)
			}
		}
	}
	h := host(addr)
	r := l.m[h]
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
