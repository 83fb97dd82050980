package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// AuthLimits configures the router's brute-force limiter, which counts
// failed authentications per source address (an IPv4 address, or the /64 of
// an IPv6 one). The zero value of every field takes its default.
//
// A locked-out address gets ABORT wamp.error.authentication_denied for every
// HELLO, anonymous ones included, and for every AUTHENTICATE, until Lockout
// has passed. Clients behind one NAT share one address, and so one count.
type AuthLimits struct {
	// DelayAfter: past this many failures within Window, each further
	// failure is answered after a growing delay (half a second more per
	// failure, at most 5 s). Default 3.
	DelayAfter int
	// BlockAfter: this many failures within Window lock the address out
	// for Lockout. Each AUTHENTICATE reserves its place before its secret
	// is checked: at most BlockAfter, minus the failures so far, are
	// checked at a time, and the others wait for their turn (or for the
	// lockout, which refuses them unchecked). Default 10.
	BlockAfter int
	// Window is the period over which failures are counted. Default 1m.
	Window time.Duration
	// Lockout is how long a locked-out address is refused. Default 5m.
	Lockout time.Duration
	// MaxOpenChallenges bounds the challenge-response authentications in
	// progress per address (from HELLO to WELCOME or ABORT); past it a
	// HELLO that would start one is refused with
	// wamp.error.authentication_denied. Default 1024: a fleet behind one
	// NAT may reconnect all at once, and it stays well below the router-wide
	// queue of pending authentications (Config.AuthQueue, 4096), so that one
	// address cannot take it all.
	MaxOpenChallenges int
	// Exempt networks are never counted nor locked out (a trusted gateway,
	// the loopback of a local bridge).
	Exempt []netip.Prefix
}

// Defaults of AuthLimits.
const (
	DefaultAuthDelayAfter        = 3
	DefaultAuthBlockAfter        = 10
	DefaultAuthWindow            = time.Minute
	DefaultAuthLockout           = 5 * time.Minute
	DefaultAuthMaxOpenChallenges = 1024
)

// withDefaults fills the zero fields and checks the others.
func (l AuthLimits) withDefaults() (AuthLimits, error) {
	var errs []error
	def := func(v *int, d int, name string) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			errs = append(errs, fmt.Errorf("route: auth limits: %s must not be negative", name))
		}
	}
	def(&l.DelayAfter, DefaultAuthDelayAfter, "delay_after")
	def(&l.BlockAfter, DefaultAuthBlockAfter, "block_after")
	def(&l.MaxOpenChallenges, DefaultAuthMaxOpenChallenges, "max_open_challenges")
	if l.Window <= 0 {
		l.Window = DefaultAuthWindow
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultAuthLockout
	}
	for _, p := range l.Exempt {
		if !p.IsValid() {
			errs = append(errs, errors.New("route: auth limits: an exempt network is not valid"))
		}
	}
	return l, errors.Join(errs...)
}

// authLimiter implements AuthLimits. Safe for concurrent use: shards call
// it on the HELLO and AUTHENTICATE paths (cold), workers when a check ends.
type authLimiter struct {
	lim AuthLimits // static

	mu      sync.Mutex
	m       map[string]*failRec // guarded by mu
	sweepAt int                 // guarded by mu: size at which the next lookup drops idle records
	sweptAt time.Time           // guarded by mu: the last sweep
}

// failRec is one address's record. Guarded by authLimiter.mu.
type failRec struct {
	n            int       // failures since first
	first        time.Time // first failure of the current window
	blockedUntil time.Time
	checking     int         // AUTHENTICATEs reserved: being checked now
	open         int         // challenge-response authentications in progress
	waiting      []*authWait // AUTHENTICATEs waiting for a place, oldest first
}

// authWait is an AUTHENTICATE waiting for its place. fire runs exactly once
// (unless the wait is cancelled first), outside the limiter's lock: granted
// means a place was reserved for it, which settle must release.
type authWait struct {
	fire func(granted bool)
}

const (
	maxDelay   = 5 * time.Second
	limiterMin = 65536 // records kept before the first sweep of idle ones
	limiterMax = 1 << 20
)

func newAuthLimiter(lim AuthLimits) *authLimiter {
	return &authLimiter{lim: lim, m: map[string]*failRec{}, sweepAt: limiterMin}
}

// key returns the record key of a remote address: its IPv4 address, or the
// /64 of an IPv6 one (one host, or one customer, gets a whole /64 and could
// otherwise try from 2^64 addresses). It returns "" (not limited) for an
// empty address (in-process sessions) and for exempt networks.
func (l *authLimiter) key(remote string) string {
	if remote == "" {
		return ""
	}
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		h = remote
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return h // not an IP address (a Unix socket): limited by its name
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range l.lim.Exempt {
		if p.Contains(ip) {
			return ""
		}
	}
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// rec returns the record of key, creating it unless the table is full of
// live records (then nil: the address is not tracked, and its attempts
// are refused). Called with mu held.
func (l *authLimiter) rec(key string, now time.Time) *failRec {
	if r := l.m[key]; r != nil {
		return r
	}
	// Amortized: the next sweep waits until the table has doubled. A full
	// table (whose doubling never comes) is swept for a new address at most
	// once a second, so that records that have aged make room again.
	if len(l.m) >= l.sweepAt || len(l.m) >= limiterMax && now.Sub(l.sweptAt) >= time.Second {
		for k, r := range l.m {
			if r.idle(now, l.lim.Window) {
				delete(l.m, k)
			}
		}
		l.sweepAt = max(2*len(l.m), limiterMin)
		l.sweptAt = now
	}
	if len(l.m) >= limiterMax {
		return nil
	}
	r := &failRec{}
	l.m[key] = r
	return r
}

// idle reports whether r holds nothing that matters at now.
func (r *failRec) idle(now time.Time, window time.Duration) bool {
	return r.checking == 0 && r.open == 0 && len(r.waiting) == 0 &&
		now.Sub(r.first) > window && !now.Before(r.blockedUntil)
}

// failures returns the failures that count at now.
func (r *failRec) failures(now time.Time, window time.Duration) int {
	if now.Sub(r.first) > window {
		return 0
	}
	return r.n
}

// room reports whether one more AUTHENTICATE may be checked at now (the
// address is not locked out). With none being checked it always may: only
// a check's settle releases waiting ones, so a wait with none in flight
// would never end. That happens when a lockout shorter than the window has
// ended with BlockAfter failures still in it: one check at a time then,
// and its failure locks the address out again.
func (r *failRec) room(now time.Time, lim AuthLimits) bool {
	return r.checking == 0 || r.checking+r.failures(now, lim.Window) < lim.BlockAfter
}

// tracked reports whether key has a record (false when the table had no
// room for it).
func (l *authLimiter) tracked(key string) bool {
	if key == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[key] != nil
}

// blocked reports whether key is locked out at now.
func (l *authLimiter) blocked(key string, now time.Time) bool {
	if key == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[key]
	return r != nil && now.Before(r.blockedUntil)
}

// open counts a challenge-response authentication starting from key. It
// returns false, counting nothing, when key is locked out or has
// MaxOpenChallenges in progress. Each successful open needs one close.
func (l *authLimiter) open(key string, now time.Time) bool {
	if key == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rec(key, now)
	switch {
	case r == nil:
		return false // the table is full of live records: refused, untracked
	case now.Before(r.blockedUntil), r.open >= l.lim.MaxOpenChallenges:
		return false
	}
	r.open++
	return true
}

// close ends an authentication counted by open.
func (l *authLimiter) close(key string) {
	if key == "" {
		return
	}
	l.mu.Lock()
	if r := l.m[key]; r != nil && r.open > 0 {
		r.open--
	}
	l.mu.Unlock()
}

type verdict uint8

const (
	granted   verdict = iota // a place is reserved: check the secret, then settle
	denied                   // locked out: refuse without checking
	queued                   // w fires when a place frees up or the address is locked out
	untracked                // the table has no room for the address: refuse without checking
)

// reserve asks for a place to check one AUTHENTICATE from key. At most
// BlockAfter minus the failures in the window are checked at a time, so
// that parallel attempts cannot get more secrets checked than the lockout
// allows. A granted place must be released by settle; a queued w must be
// cancelled if its session goes away before it fires.
func (l *authLimiter) reserve(key string, now time.Time, w *authWait) verdict {
	if key == "" {
		return granted
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rec(key, now)
	switch {
	case r == nil:
		// The table is full of live records (a flood from 2^20
		// addresses): refused rather than checked without a limit.
		return untracked
	case now.Before(r.blockedUntil):
		return denied
	case len(r.waiting) == 0 && r.room(now, l.lim):
		r.checking++
		return granted
	}
	r.waiting = append(r.waiting, w)
	return queued
}

// cancel removes a queued w. It returns false when w has fired already (it
// was granted or denied meanwhile).
func (l *authLimiter) cancel(key string, w *authWait) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.m[key]
	if r == nil {
		return false
	}
	i := slices.Index(r.waiting, w)
	if i < 0 {
		return false
	}
	r.waiting = slices.Delete(r.waiting, i, i+1)
	return true
}

// settle ends an attempt from key: reserved releases a place taken by
// reserve, failed counts a failure (a wrong secret, or a failed challenge).
// It returns how long to delay the failure's answer, and whether key has
// just been locked out. Waiting AUTHENTICATEs then get the freed places,
// or are refused if key is locked out.
func (l *authLimiter) settle(key string, reserved, failed bool, now time.Time) (delay time.Duration, blockedNow bool) {
	if key == "" {
		return 0, false
	}
	var fire []*authWait
	var grant bool
	l.mu.Lock()
	r := l.rec(key, now)
	if r == nil {
		l.mu.Unlock()
		if failed {
			return maxDelay, false // full of live records: answer slowly, track no more
		}
		return 0, false
	}
	if reserved && r.checking > 0 {
		r.checking--
	}
	if failed {
		if now.Sub(r.first) > l.lim.Window {
			r.n, r.first = 0, now
		}
		r.n++
		if r.n >= l.lim.BlockAfter && !now.Before(r.blockedUntil) {
			r.blockedUntil = now.Add(l.lim.Lockout)
			blockedNow = true
		}
		if r.n > l.lim.DelayAfter {
			delay = min(time.Duration(r.n-l.lim.DelayAfter)*500*time.Millisecond, maxDelay)
		}
	}
	if now.Before(r.blockedUntil) {
		fire, r.waiting = r.waiting, nil
	} else {
		grant = true
		k := 0
		for k < len(r.waiting) && r.room(now, l.lim) {
			r.checking++
			k++
		}
		fire = slices.Clone(r.waiting[:k])
		r.waiting = slices.Delete(r.waiting, 0, k)
	}
	l.mu.Unlock()
	for _, w := range fire {
		w.fire(grant)
	}
	return delay, blockedNow
}
