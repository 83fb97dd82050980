package oauth

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// AuthLimits configure the per-address limit on failed client, password
// and user-code attempts: the policy of the WAMP authenticators (cmd passes
// the same limits.auth_failures), with separate counts. Zero fields take
// the defaults.
type AuthLimits struct {
	// DelayAfter: past this many failures within Window, each further
	// failure is answered after a growing delay (half a second more each,
	// at most 5 s). Default 3.
	DelayAfter int
	// BlockAfter: this many failures within Window lock the address out for
	// Lockout (HTTP 429). Each attempt reserves its place before its secret
	// is checked: at most BlockAfter, minus the failures so far, are checked
	// at a time, and the others are answered 429 at once, so that parallel
	// requests get no more guesses checked than the threshold. Default 10.
	BlockAfter int
	// Window over which failures are counted. Default 1 min.
	Window time.Duration
	// Lockout is how long a locked-out address is refused. Default 5 min.
	Lockout time.Duration
	// Exempt networks are never counted nor locked out.
	Exempt []netip.Prefix
}

// limiter counts failed authentications per source address (its IPv4
// address, or the /64 of its IPv6 address: one host, or one customer, gets a
// whole /64). Safe for concurrent use.
type limiter struct {
	lim     AuthLimits // static
	max     int        // static: sources tracked (limiterMax; tests lower it)
	mu      sync.Mutex
	m       map[string]*failRec // guarded by mu
	sweepAt int                 // guarded by mu
	sweptAt time.Time           // the last sweep; guarded by mu
}

type failRec struct {
	n            int // failures since first
	open         int // attempts being checked
	first        time.Time
	blockedUntil time.Time
}

const (
	maxDelay   = 5 * time.Second
	limiterMin = 4096
	limiterMax = 1 << 20
)

func newLimiter(l AuthLimits) *limiter {
	if l.DelayAfter <= 0 {
		l.DelayAfter = 3
	}
	if l.BlockAfter <= 0 {
		l.BlockAfter = 10
	}
	setDur(&l.Window, time.Minute)
	setDur(&l.Lockout, 5*time.Minute)
	return &limiter{lim: l, max: limiterMax, m: map[string]*failRec{}, sweepAt: limiterMin}
}

// source is the limiter's view of a request's origin. (Behind a reverse
// proxy, the gateway is the place to put the client's address into
// RemoteAddr.)
type source struct {
	key    string // "" for an exempt address
	remote string // for logs
}

func (l *limiter) source(r *http.Request) source {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		h = r.RemoteAddr
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return source{key: h, remote: r.RemoteAddr}
	}
	a = a.Unmap()
	for _, p := range l.lim.Exempt {
		if p.Contains(a) {
			return source{remote: r.RemoteAddr}
		}
	}
	if a.Is4() {
		return source{key: a.String(), remote: r.RemoteAddr}
	}
	p, _ := a.Prefix(64)
	return source{key: p.String(), remote: r.RemoteAddr}
}

// rec returns the record of key, resetting its count after the window.
// Caller holds mu; nil when the table is full of live records.
func (l *limiter) rec(key string, now time.Time) *failRec {
	r := l.m[key]
	// Amortized: the next sweep waits until the table has doubled. A full
	// table (whose doubling never comes) is swept for a new source at most
	// once a second, so that records that have aged make room again.
	if len(l.m) >= l.sweepAt || (r == nil && len(l.m) >= l.max && now.Sub(l.sweptAt) >= time.Second) {
		for k, x := range l.m {
			if x.open == 0 && now.Sub(x.first) > l.lim.Window && now.After(x.blockedUntil) {
				delete(l.m, k)
			}
		}
		l.sweepAt = max(2*len(l.m), limiterMin)
		l.sweptAt = now
		r = l.m[key]
	}
	if r == nil {
		if len(l.m) >= l.max {
			return nil
		}
		r = &failRec{first: now}
		l.m[key] = r
	}
	if now.Sub(r.first) > l.lim.Window {
		r.n, r.first = 0, now
	}
	return r
}

// blocked reports whether the source is locked out at now, and until when.
func (l *limiter) blocked(src source, now time.Time) (bool, time.Time) {
	if src.key == "" {
		return false, time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[src.key]
	if r != nil && now.Before(r.blockedUntil) {
		return true, r.blockedUntil
	}
	return false, time.Time{}
}

// begin reserves an attempt before a secret is checked. It returns false,
// and how long to wait, when the source is locked out or already has as
// many attempts in progress as it has failures left.
func (l *limiter) begin(src source, now time.Time) (bool, time.Duration) {
	if src.key == "" {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rec(src.key, now)
	switch {
	case r == nil:
		return false, maxDelay // full of live records: track no more, answer later
	case now.Before(r.blockedUntil):
		return false, r.blockedUntil.Sub(now)
	case r.n+r.open >= l.lim.BlockAfter:
		return false, time.Second
	}
	r.open++
	return true, 0
}

// end releases a reservation. A failure is counted: it returns how long to
// delay the answer and whether the source just got locked out.
func (l *limiter) end(src source, now time.Time, failed bool) (delay time.Duration, blockedNow bool) {
	if src.key == "" {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[src.key]
	if r == nil {
		return 0, false
	}
	if r.open > 0 {
		r.open--
	}
	if !failed {
		return 0, false
	}
	if now.Sub(r.first) > l.lim.Window {
		r.n, r.first = 0, now
	}
	r.n++
	if r.n >= l.lim.BlockAfter && now.After(r.blockedUntil) {
		r.blockedUntil = now.Add(l.lim.Lockout)
		blockedNow = true
	}
	if r.n > l.lim.DelayAfter {
		delay = min(time.Duration(r.n-l.lim.DelayAfter)*500*time.Millisecond, maxDelay)
	}
	return delay, blockedNow
}
