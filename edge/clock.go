package edge

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// How late a meta query from another node is.
//
// A node that was stopped (SIGSTOP, a long pause, a suspended host) or far
// behind finds, when it runs again, the meta queries other nodes sent it
// meanwhile, in its socket and in NATS's buffers. Their askers answered
// long ago (with wamp.error.unavailable, naming it, when it could hold
// what was asked for): a wamp.session.kill carried out now would do what
// its caller was told had not been done. So each query says when its
// asker sent it and how long the asker waits, and the receiver runs it
// only if the answer can still count.
//
// Nodes' clocks are not compared. Each node stamps its heartbeats and
// queries with its own CLOCK_BOOTTIME (nanoseconds since its host booted:
// no wall-clock steps, which an edge box without a real-time clock makes
// by years at its first NTP sync; and, unlike CLOCK_MONOTONIC, it counts
// a suspended host's sleep, so a host that sleeps neither makes its
// stamps jump nor sees others' jump). For each peer, the receiver keeps
// the least difference between its own clock when it handled a stamped
// message and the message's stamp: the two clocks' offset plus the
// quickest trip. A query's lateness is how much its own difference exceeds
// that: queueing and stalls beyond the quickest trip, on either side.
//
// A lower difference lowers the estimate at once (in a node's first
// seconds its peers' heartbeats may all have waited behind its start);
// higher ones raise it by at most clockDriftPPM of the time their stamps
// advanced, enough to follow two crystals' drift (tens of ppm) and far
// too little to absorb a backlog: a node that catches up on ten seconds
// of queued messages, however slowly, still finds the queries among them
// late.

// clockDriftPPM bounds how fast the estimate of a peer's clock may rise:
// 1 ms per second of the peer's clock.
const clockDriftPPM = 1000

// peerClock is one peer's clock as this node sees it (owned by the
// control dispatcher; a restarted peer gets a new one with its new
// record).
type peerClock struct {
	base int64 // the least local-minus-stamp difference believed
	at   int64 // the stamp base was last brought to
	set  bool
}

// observe takes a stamped message handled at local by this node.
func (c *peerClock) observe(stamp, local int64) {
	d := local - stamp
	if !c.set {
		c.base, c.at, c.set = d, stamp, true
		return
	}
	if el := stamp - c.at; el > 0 {
		c.base += el / (1e6 / clockDriftPPM)
		c.at = stamp
	}
	c.base = min(c.base, d)
}

// late returns how much later than the quickest of its sender's messages
// a message stamped stamp is handled at local (ok false: not known yet).
func (c *peerClock) late(stamp, local int64) (time.Duration, bool) {
	if !c.set {
		return 0, false
	}
	return time.Duration(max(local-stamp-c.base, 0)), true
}

// clockNow is this node's clock for stamps: CLOCK_BOOTTIME in
// nanoseconds.
func clockNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// Not on Linux before 2.6.39: the process's monotonic clock.
		return int64(time.Since(processStart))
	}
	return ts.Nano()
}

var processStart = time.Now()

// queryDeadline returns when a meta query a peer stamped stamp, whose
// asker waits wait, stops being worth running here: a fifth of the wait
// is left for the answer's way back. Zero when the peer's clock is not
// known yet (it is run, as before).
func queryDeadline(c *peerClock, stamp int64, wait time.Duration, local int64, now time.Time) time.Time {
	late, ok := c.late(stamp, local)
	if !ok {
		return time.Time{}
	}
	return now.Add(wait - wait/5 - late)
}

// queryStamp parses what follows the asker's inbox in a meta query's
// reply subject: ".a.<gather>.<stamp>.<wait in ms>.<boot>" (Gather); ok
// false for a query of a release before the stamps, or a malformed one.
func queryStamp(tail string) (stamp int64, wait time.Duration, boot uint64, ok bool) {
	rest, found := strings.CutPrefix(tail, ".a.")
	if !found {
		return 0, 0, 0, false
	}
	f := strings.Split(rest, ".")
	if len(f) != 4 {
		return 0, 0, 0, false
	}
	stamp, err1 := strconv.ParseInt(f[1], 10, 64)
	w, err2 := strconv.ParseInt(f[2], 10, 64)
	boot, err3 := strconv.ParseUint(f[3], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || stamp < 0 || w <= 0 || w > int64(time.Hour/time.Millisecond) {
		return 0, 0, 0, false
	}
	return stamp, time.Duration(w) * time.Millisecond, boot, true
}

// queryReply is the reply subject of gather id: see queryStamp.
func (n *Node) queryReply(id uint64) string {
	return n.inbox + ".a." + strconv.FormatUint(id, 10) + "." + strconv.FormatInt(clockNow(), 10) + "." + strconv.FormatInt(max(n.opts.GatherTimeout.Milliseconds(), 1), 10) + "." + strconv.FormatUint(n.boot, 16)
}
