package oauth

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// limiter rate-limits failed client and password authentications per
// source address, with the policy of the WAMP authenticators
// (route/ratelimit.go): after delayAfter failures within failWindow each
// further failure is answered only after a growing delay (up to maxDelay);
// after refuseAfter the address is refused for blockFor. IPv6 addresses
// count per /64. Wrong user codes on the device page count too. Safe for
// concurrent use.
type limiter struct {
	mu      sync.Mutex
	m       map[string]*failRec // guarded by mu
	sweepAt int                 // guarded by mu
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
	limiterMin  = 4096
	limiterMax  = 1 << 20
)

func newLimiter() *limiter { return &limiter{m: map[string]*failRec{}, sweepAt: limiterMin} }

// addrKey is the limiter's key of a request's source: its IPv4 address or
// the /64 of its IPv6 address. (Behind a reverse proxy, the gateway is the
// place to put the client's address into RemoteAddr.)
func addrKey(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		h = r.RemoteAddr
	}
	ip := net.ParseIP(h)
	switch {
	case ip == nil:
		return h
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// blocked reports whether key is refused at now, and until when.
func (l *limiter) blocked(key string, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[key]
	if r != nil && now.Before(r.blockedUntil) {
		return true, r.blockedUntil
	}
	return false, time.Time{}
}

// fail records a failure and returns how long to delay its answer, and
// whether the address just got blocked.
func (l *limiter) fail(key string, now time.Time) (delay time.Duration, blockedNow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= l.sweepAt {
		for k, r := range l.m {
			if now.Sub(r.first) > failWindow && now.After(r.blockedUntil) {
				delete(l.m, k)
			}
		}
		l.sweepAt = max(2*len(l.m), limiterMin)
	}
	r := l.m[key]
	if r == nil && len(l.m) >= limiterMax {
		return maxDelay, false
	}
	if r == nil || now.Sub(r.first) > failWindow {
		r = &failRec{first: now}
		l.m[key] = r
	}
	r.n++
	if r.n >= refuseAfter && now.After(r.blockedUntil) {
		r.blockedUntil = now.Add(blockFor)
		blockedNow = true
	}
	if r.n > delayAfter {
		delay = min(time.Duration(r.n-delayAfter)*500*time.Millisecond, maxDelay)
	}
	return delay, blockedNow
}
