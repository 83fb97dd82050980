package oauth

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/edgewamp/edgewamp/internal/slide"
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
	// Window over which failures are counted. Default 1 min. It slides:
	// the failures of the window before the current one count weighted by
	// the part of it the last Window still covers (package slide), so
	// that failures at a window's end and the next one's start add up,
	// as the WAMP authenticators' do.
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
	lim  AuthLimits   // static
	max  int          // static: sources tracked (limiterMax; tests lower it)
	seed maphash.Seed // static: for the keys of sources that are not IP addresses
	mu   sync.Mutex
	m    map[srcKey]failRec // guarded by mu
	// waits holds, for each source with requests waiting for a place
	// (beginWait), their count and the channel that wakes one of them
	// when a place is given back (end, cancel). Made when one waits;
	// guarded by mu.
	waits map[srcKey]*waiters
	// parked and wakes count the requests waiting in beginWait now, and
	// their wake-ups so far (tests). Guarded by mu.
	parked, wakes int
	sweepAt       int // guarded by mu
	// fullSince (Unix ns) and fullSweeps (guarded by mu): the sweeps of
	// the full table in the second from fullSince (fullSweepsPerSecond at
	// most).
	fullSince  int64
	fullSweeps int
	// sweepVisits counts the records the sweeps have looked at (tests).
	// Guarded by mu.
	sweepVisits int
}

// srcKey is a source's key: an IPv4 address (hi 0, lo 0xffff<<32 | the
// address), an IPv6 /64 (hi the prefix, lo 1), or the hash of a remote
// address that is not an IP address (hi, lo 2). The zero key is an exempt
// source (not limited). Sixteen bytes, stored in the map by value, where a
// string and a pointer to a record cost 156 bytes a source.
type srcKey struct{ hi, lo uint64 }

// failRec is a source's record, by value in the map: 32 bytes (24 before
// the sliding window). Times are Unix nanoseconds (0: none).
type failRec struct {
	fails        slide.Window // failures, over a sliding window of AuthLimits.Window
	blockedUntil int64
	open         int32 // attempts being checked
}

// failures returns the failures that count at now (slide.Window.Count).
// Before, the windows were fixed, each starting at the first failure
// after the last one ended: nine failures at the end of one and nine at
// the start of the next, 18 in two seconds, locked nothing out at a
// bound of ten.
func (r *failRec) failures(now int64, window time.Duration) int {
	return r.fails.Count(now, window)
}

const (
	maxDelay   = 5 * time.Second
	limiterMin = 4096
	limiterMax = 1 << 20
	sweepChunk = 1024 // records one sweep looks at, at most
	// fullSweepsPerSecond bounds the sweeps of the full table in a
	// second: 16 chunks, about 2 ms of mu a second at 2^20 records (a
	// walk of them all held it 116-117 ms).
	fullSweepsPerSecond = 16
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
	return &limiter{lim: l, max: limiterMax, seed: maphash.MakeSeed(), m: map[srcKey]failRec{}, sweepAt: limiterMin}
}

// source is the limiter's view of a request's origin. (Behind a reverse
// proxy, the gateway is the place to put the client's address into
// RemoteAddr.)
type source struct {
	key    srcKey // zero for an exempt address
	remote string // for logs
}

func (l *limiter) source(r *http.Request) source {
	return l.sourceOf(r.RemoteAddr)
}

// sourceOf is source of a request from remote (host:port).
func (l *limiter) sourceOf(remote string) source {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		h = remote
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return source{key: srcKey{maphash.String(l.seed, h), 2}, remote: remote}
	}
	// Without its zone, as the WAMP limiter compares it:
	// netip.Prefix.Contains is false for any address with a zone, so a
	// link-local client ([fe80::1%eth0]:port) was never exempt here.
	a = a.Unmap().WithZone("")
	for _, p := range l.lim.Exempt {
		if p.Contains(a) {
			return source{remote: remote}
		}
	}
	b := a.As16()
	if a.Is4() {
		return source{key: srcKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[12:]))}, remote: remote}
	}
	return source{key: srcKey{binary.BigEndian.Uint64(b[:8]), 1}, remote: remote}
}

// rec returns the record of key, resetting its count after the window,
// and whether it has one (false when the table is full of live records).
// Caller holds mu; the record is a copy, to be stored back with put.
func (l *limiter) rec(key srcKey, now int64) (failRec, bool) {
	r, ok := l.m[key]
	// A sweep looks at most at sweepChunk records, from the random place
	// Go starts each walk of a map at (successive sweeps reach every
	// record): it holds mu, which every request to the endpoints takes,
	// and a walk of the whole table, swept again for each new source once
	// a second while full of live records, held it 116-117 ms at 2^20
	// (the shared 2-core VM, without -race). It runs when the table has
	// grown by half a chunk since the last one (from limiterMin on); when
	// it is full, for each new source, up to fullSweepsPerSecond a second,
	// so that records that have aged make room again as new sources need
	// it; and at the next request while at least half of what the last
	// chunk looked at was idle (a flood that has aged is dropped a chunk
	// per request). Before, a full table was swept at most once a second:
	// one chunk since the sweep was bounded, so that with fewer than half
	// of its records idle a few hundred places a second were freed, and
	// the rest of the second's new sources were refused while idle
	// records held the room.
	if len(l.m) >= l.sweepAt || (!ok && len(l.m) >= l.max && l.fullSweep(now)) {
		looked, dropped := 0, 0
		for k, x := range l.m {
			if looked == sweepChunk {
				break
			}
			looked++
			// failures only decreases while none is added: once 0, it
			// stays 0.
			if x.open == 0 && x.failures(now, l.lim.Window) == 0 && now > x.blockedUntil {
				delete(l.m, k)
				dropped++
			}
		}
		l.sweepVisits += looked
		if dropped > 0 && 2*dropped >= looked {
			l.sweepAt = 0
		} else {
			l.sweepAt = max(len(l.m)+sweepChunk/2, limiterMin)
		}
		r, ok = l.m[key]
	}
	if !ok {
		if len(l.m) >= l.max {
			return failRec{}, false
		}
		r = failRec{}
	}
	r.fails.Roll(now, l.lim.Window)
	return r, true
}

// fullSweep reports whether a sweep of the full table may run at now
// (Unix ns), and counts it: at most fullSweepsPerSecond in a second.
// Caller holds mu.
func (l *limiter) fullSweep(now int64) bool {
	// Out of order by less than a second (callers read the clock before
	// taking mu): the same second.
	if d := now - l.fullSince; d >= int64(time.Second) || d < -int64(time.Second) {
		l.fullSince, l.fullSweeps = now, 0
	}
	if l.fullSweeps >= fullSweepsPerSecond {
		return false
	}
	l.fullSweeps++
	return true
}

// blocked reports whether the source is locked out at now, and until when.
func (l *limiter) blocked(src source, now time.Time) (bool, time.Time) {
	if src.key == (srcKey{}) {
		return false, time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.m[src.key]; ok && now.UnixNano() < r.blockedUntil {
		return true, time.Unix(0, r.blockedUntil)
	}
	return false, time.Time{}
}

// begin reserves an attempt before a secret is checked. It returns false,
// and how long to wait, when the source is locked out or already has as
// many attempts in progress as it has failures left.
func (l *limiter) begin(src source, t time.Time) (bool, time.Duration) {
	if src.key == (srcKey{}) {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, retry, _ := l.take(src.key, t.UnixNano())
	return ok, retry
}

// take is begin's reservation; busy reports a refusal only because the
// source's other places are held by attempts in progress (not by its
// failures, a lockout or a full table). Caller holds mu.
func (l *limiter) take(key srcKey, now int64) (ok bool, retry time.Duration, busy bool) {
	r, ok := l.rec(key, now)
	if !ok {
		return false, maxDelay, false // full of live records: track no more, answer later
	}
	if now < r.blockedUntil {
		l.m[key] = r
		return false, time.Duration(r.blockedUntil - now), false
	}
	if f := r.failures(now, l.lim.Window); f+int(r.open) >= l.lim.BlockAfter {
		l.m[key] = r
		return false, time.Second, f < l.lim.BlockAfter
	}
	r.open++
	l.m[key] = r
	return true, 0, false
}

// beginWait is begin for a request that is most often no guess (a
// public client's, which has no secret: Server.authClient): where the
// source's places are all held by requests in progress, rather than
// taken by its failures, it waits for one to be given back, up to wait
// or until ctx ends. So an address's honest requests at once (an
// office's NAT, a carrier's CGNAT: a public client's browsers and apps)
// are served, at most as many at a time as begin lets through, where
// begin refused the 11th 429; parallel guesses are still checked no more
// than that at a time, and are refused as soon as their failures lock
// the source out. now is read again after each wait. It allocates only
// when it waits (a channel and a record, and a timer).
//
// A place given back wakes one waiter (freed), not all: one place serves
// one. The waiter passes the wake on when it leaves a place free, or is
// refused for a reason every waiter shares (a lockout), so that a wake
// is not lost when two places are given back before it runs.
func (l *limiter) beginWait(ctx context.Context, src source, now func() time.Time, wait time.Duration) (bool, time.Duration) {
	if src.key == (srcKey{}) {
		return true, 0
	}
	var timeout <-chan time.Time
	woken := false
	for {
		l.mu.Lock()
		ok, retry, busy := l.take(src.key, now().UnixNano())
		if ok || !busy || wait <= 0 {
			if woken && (!ok || l.placeFree(src.key, now().UnixNano())) {
				l.freed(src.key)
			}
			l.mu.Unlock()
			return ok, retry
		}
		w := l.waits[src.key]
		if w == nil {
			if l.waits == nil {
				l.waits = map[srcKey]*waiters{}
			}
			w = &waiters{wake: make(chan struct{}, 1)}
			l.waits[src.key] = w
		}
		w.n++
		l.parked++
		l.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		woken = false
		expired := false
		select {
		case <-w.wake:
			woken = true
		case <-timeout:
			expired = true
		case <-ctx.Done():
		}
		l.mu.Lock()
		l.parked--
		if woken {
			l.wakes++
		}
		if w.n--; w.n == 0 && l.waits[src.key] == w {
			delete(l.waits, src.key)
		}
		ok = false
		if expired {
			// A place that came free with no wake (a failure leaving
			// its window; nothing given back) is taken: the waiter was
			// refused with it free (TestPlaceWaitTakesPlaceFreedByAgedFailure).
			ok, retry, _ = l.take(src.key, now().UnixNano())
		}
		l.mu.Unlock()
		if !woken {
			return ok, retry
		}
	}
}

// waiters are the requests waiting in beginWait for a source's place:
// how many, and the channel (of one) that wakes one of them.
type waiters struct {
	wake chan struct{}
	n    int
}

// placeFree reports whether key has a place free at now (its failures
// and attempts in progress under the threshold). Caller holds mu.
func (l *limiter) placeFree(key srcKey, now int64) bool {
	r, ok := l.m[key]
	return !ok || now >= r.blockedUntil && r.failures(now, l.lim.Window)+int(r.open) < l.lim.BlockAfter
}

// freed wakes one request waiting for a place of key (beginWait), if
// any; a wake already pending stands for this one (its waiter passes it
// on). Caller holds mu.
func (l *limiter) freed(key srcKey) {
	if w := l.waits[key]; w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// end releases a reservation. A failure is counted: it returns how long to
// delay the answer and whether the source just got locked out.
func (l *limiter) end(src source, t time.Time, failed bool) (delay time.Duration, blockedNow bool) {
	if src.key == (srcKey{}) {
		return 0, false
	}
	now := t.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.m[src.key]
	if !ok {
		return 0, false
	}
	defer func() { l.m[src.key] = r }()
	if r.open > 0 {
		r.open--
		l.freed(src.key)
	}
	if !failed {
		return 0, false
	}
	return l.count(&r, now)
}

// fail counts a failure of src at t without a reservation (begin): it
// makes the source's record if it has none (none when the table is full
// of live records). It returns what end returns.
func (l *limiter) fail(src source, t time.Time) (delay time.Duration, blockedNow bool) {
	if src.key == (srcKey{}) {
		return 0, false
	}
	now := t.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rec(src.key, now)
	if !ok {
		return 0, false
	}
	defer func() { l.m[src.key] = r }()
	return l.count(&r, now)
}

// count adds a failure to r at now (Unix ns): the delay to answer it
// after, and whether it locked the source out. Caller holds mu.
func (l *limiter) count(r *failRec, now int64) (delay time.Duration, blockedNow bool) {
	r.fails.Add(now, l.lim.Window)
	n := r.failures(now, l.lim.Window)
	if n >= l.lim.BlockAfter && now > r.blockedUntil {
		r.blockedUntil = now + int64(l.lim.Lockout)
		blockedNow = true
	}
	if n > l.lim.DelayAfter {
		delay = min(time.Duration(n-l.lim.DelayAfter)*500*time.Millisecond, maxDelay)
	}
	return delay, blockedNow
}

// cancel releases a reservation whose attempt was refused for a reason
// that is not the source's (the node's budget), counting nothing: a
// record that then holds nothing (no failures, none being checked, no
// lockout) is dropped, so that such refusals leave no source behind.
func (l *limiter) cancel(src source, t time.Time) {
	if src.key == (srcKey{}) {
		return
	}
	now := t.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.m[src.key]
	if !ok {
		return
	}
	if r.open > 0 {
		r.open--
		l.freed(src.key)
	}
	if r.open == 0 && r.failures(now, l.lim.Window) == 0 && now >= r.blockedUntil {
		delete(l.m, src.key)
		return
	}
	l.m[src.key] = r
}
