// Package slide counts events over a sliding window, the way the
// router's rate limiters count (the WAMP authenticators', the OAuth2
// endpoints', the HTTP gateway's, the OAuth2 device-authorization
// budget): the events of the current fixed window, plus those of the
// window before it weighted by the part of that window the last window
// still covers, taking them as spread evenly (the approximation
// Cloudflare describes for its rate limiting). A fixed window lets a client make twice the
// limit across a window's boundary (the limit at its end, the limit again
// at the next one's start); this one lets it make the limit, and a little
// more only while the approximation errs.
//
// A Window is 16 bytes, stored by value in the limiters' records. It is
// not safe for concurrent use: its owner guards it. Times are
// nanoseconds on the owner's clock (Unix time in oauth and route; since
// the limiter's start, monotonic, in gateway); nothing here allocates or
// reads the clock.
package slide

import (
	"math"
	"time"
)

// Window is a sliding-window count of events. Its zero value counts none.
type Window struct {
	first int64 // ns: the start of the current fixed window (0 with no events: none yet)
	n     int32 // events since first
	prev  int32 // events of the window before first (Count weighs them)
}

// Count returns the events that count at now over the last w: those of
// the current window, plus those of the window before it weighted by the
// part of that window the last w still covers, rounded down. A clock that
// went back counts both windows whole.
func (c *Window) Count(now int64, w time.Duration) int {
	el, d := now-c.first, int64(w)
	switch {
	case el < 0:
		return int(c.n) + int(c.prev)
	case el < d:
		return int(c.n) + int(float64(c.prev)*float64(d-el)/float64(d))
	case el < 2*d:
		return int(float64(c.n) * float64(2*d-el) / float64(d))
	}
	return 0
}

// Roll moves the window on to the one now is in, by whole windows: the
// current window's events become the previous one's, or both are
// forgotten once two windows have passed (a new window then starts at
// now). Count is the same before and after; Add rolls first.
func (c *Window) Roll(now int64, w time.Duration) {
	switch el, d := now-c.first, int64(w); {
	case el >= 2*d:
		c.prev, c.n, c.first = 0, 0, now
	case el >= d:
		c.prev, c.n, c.first = c.n, 0, c.first+d
	}
}

// Add counts one event at now.
func (c *Window) Add(now int64, w time.Duration) {
	c.Roll(now, w)
	if c.n < math.MaxInt32 {
		c.n++
	}
}

// Wait returns how long after now Count falls below limit if no event
// is added (0 if it is below already): when a refused client may try
// again. Not 0 otherwise. limit must be positive (for less, it returns 2w:
// Count never falls below it).
func (c *Window) Wait(now int64, w time.Duration, limit int) time.Duration {
	d := int64(w)
	switch {
	case c.Count(now, w) < limit:
		return 0
	case limit <= 0:
		return 2 * w
	case now < c.first: // the clock went back: both windows count whole until first
		return time.Duration(c.first-now) + max(c.Wait(c.first, w, limit), 1)
	}
	var at int64 // the first time Count is below limit
	if int(c.n) >= limit {
		// Once the current window is the previous one, its events'
		// weight (2d-el)/d must take them below limit.
		at = c.first + 2*d - int64(float64(limit)*float64(d)/float64(c.n))
	} else {
		// The previous window's weight must take its events below
		// limit-n (prev > 0: Count is at least limit).
		at = c.first + d - int64(float64(limit-int(c.n))*float64(d)/float64(c.prev))
	}
	// Float rounding: step on to where Count agrees (one step at most).
	at = max(at, now+1)
	for i := 0; c.Count(at, w) >= limit && i < 64; i++ {
		at += max(1, d>>20)
	}
	return time.Duration(at - now)
}
