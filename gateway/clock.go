package gateway

import "time"

// The gateway's durations (a principal's idle time in the pool, the SSE
// reaper's spacing and how long a stream's write has been blocked, the
// spacing of its rate-limited log lines) are measured on the monotonic
// clock, as "nanos": the unix time of epoch plus the time since epoch,
// which time.Time's Sub takes from the monotonic readings when both have
// one (time.Now's). A step of the system clock (NTP's first sync on a
// board without a real-time clock, date -s, a VM resumed) moves none of
// them. Nanos are compared only with nanos, never with dates (a key's
// expiry, a signed request's timestamp, an HTTP Date: those are the wall
// clock by nature).
var (
	epoch   = time.Now()
	epochNs = epoch.UnixNano()
)

// nanos returns the time in nanos: by Options.now (a test seam) when
// set, else by time.Since(epoch), which reads the monotonic clock only
// (time.Now().UnixNano() read it and the wall clock).
func (g *Server) nanos() int64 {
	if g.opts.now == nil {
		return epochNs + int64(time.Since(epoch))
	}
	return epochNs + int64(g.opts.now().Sub(epoch))
}
