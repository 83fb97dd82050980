package client

import "time"

// The session's durations (the keepalive's silence: when bytes last
// arrived, when a write last moved, when the reader last stopped waiting;
// the spacing of its rate-limited log lines) are measured on the monotonic
// clock, as "nanos": the unix time of epoch plus the time since epoch,
// which time.Time's Sub takes from the monotonic readings when both have
// one (time.Now's). A step of the system clock (NTP's first sync on a
// device without a real-time clock, date -s, a VM resumed) moves none of
// them; read as UnixNano, the wall clock, a step forward past KeepAlive +
// KeepAliveTimeout ended every session of the process with ErrKeepAlive at
// once (a fleet of devices reconnecting together at their first sync), and
// a step back left a dead link unnoticed for the step's length
// (TestKeepAliveIgnoresWallClockSteps). Nanos are compared only with
// nanos, never with dates.
var (
	epoch   = time.Now()
	epochNs = epoch.UnixNano()
)

// nanosAt returns t in nanos (see epoch): t's monotonic reading when it
// has one, else its wall clock.
func nanosAt(t time.Time) int64 { return epochNs + int64(t.Sub(epoch)) }

// nanos returns the time in nanos by now, Config.now (a test seam):
// time.Now when nil, of which it reads only the monotonic clock.
func nanos(now func() time.Time) int64 {
	if now == nil {
		return epochNs + int64(time.Since(epoch))
	}
	return nanosAt(now())
}

// clockNow returns now(), or time.Now() when now is nil.
func clockNow(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}
