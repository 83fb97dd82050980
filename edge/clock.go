package edge

import (
	"strconv"
	"strings"
	"time"
)

// How late a meta query from another node is.
//
// A node that was stopped (SIGSTOP, a long pause) or far behind finds,
// when it runs again, the meta queries other nodes sent it meanwhile, in
// its socket and in NATS's buffers. Their askers answered long ago (with
// wamp.error.unavailable, naming it, when it could hold what was asked
// for): a wamp.session.kill carried out now would do what its caller was
// told had not been done. So each query says when its asker sent it and
// how long the asker waits, and the receiver runs it only if the answer
// can still count.
//
// Nodes' clocks are not compared. Each node stamps its heartbeats and
// queries with its own monotonic clock (nanoseconds since it started: no
// wall-clock steps, which an edge box without a real-time clock makes by
// years at its first NTP sync). For each peer, the receiver keeps the
// least difference between its own clock when it handled a heartbeat and
// the heartbeat's stamp: the two clocks' offset plus the quickest trip (a
// query quicker than every heartbeat lowers it too).
// A query's lateness is how much its own difference exceeds that:
// queueing and stalls beyond the quickest trip, on either side. The least
// difference is kept while heartbeats come in as a backlog being caught up
// (many handled in much less time than they were sent over), so a stall
// of the receiver does not raise it; otherwise it follows the least of
// the last clockRing heartbeats, so that drift and a sender's suspended
// clock are followed within a few seconds.

// clockRing is how many of a peer's last heartbeats the estimate follows.
const clockRing = 8

type clockSample struct{ stamp, local int64 }

// peerClock is one peer's clock as this node sees it (owned by the
// control dispatcher).
type peerClock struct {
	base int64 // the least local-minus-stamp difference believed
	set  bool
	ring [clockRing]clockSample
	n    int // samples in ring
	next int // where the next sample goes (the oldest once n == clockRing)
}

// observe records a heartbeat stamped stamp by its sender and handled at
// local by this node.
func (c *peerClock) observe(stamp, local int64) {
	c.ring[c.next] = clockSample{stamp, local}
	c.next = (c.next + 1) % clockRing
	if c.n < clockRing {
		c.n++
	}
	if d := local - stamp; !c.set || d < c.base {
		c.base, c.set = d, true
		return
	}
	if c.n < clockRing {
		return
	}
	oldest, newest := c.ring[c.next], c.ring[(c.next+clockRing-1)%clockRing]
	sent, handled := newest.stamp-oldest.stamp, newest.local-oldest.local
	if sent <= 0 || 2*handled < sent {
		return // a backlog being caught up (or stamps out of order)
	}
	least := c.ring[0].local - c.ring[0].stamp
	for _, s := range c.ring[1:] {
		least = min(least, s.local-s.stamp)
	}
	c.base = least
}

// lower takes a stamped message other than a heartbeat (a meta query):
// one quicker than every heartbeat lowers the least difference (in a
// node's first seconds, its peers' heartbeats may all have waited behind
// its start); none raises it, as queries come in bursts, not at a pace.
func (c *peerClock) lower(stamp, local int64) {
	if d := local - stamp; !c.set || d < c.base {
		c.base, c.set = d, true
	}
}

// late returns how much later than the quickest of its sender's
// heartbeats a message stamped stamp is handled at local (ok false: not
// known yet).
func (c *peerClock) late(stamp, local int64) (time.Duration, bool) {
	if !c.set {
		return 0, false
	}
	return time.Duration(max(local-stamp-c.base, 0)), true
}

// mono is this node's clock for stamps: nanoseconds since it was made,
// from the monotonic clock.
func (n *Node) mono() int64 { return int64(time.Since(n.mono0)) }

// queryDeadline returns when a meta query a peer stamped stamp, whose
// asker waits wait, stops being worth running here: a fifth of the wait
// is left for the answer's way back. Zero when the query carries no
// stamp or the peer's clock is not known yet (it is run, as before).
func queryDeadline(c *peerClock, stamp int64, wait time.Duration, local int64, now time.Time) time.Time {
	late, ok := c.late(stamp, local)
	if !ok || wait <= 0 {
		return time.Time{}
	}
	return now.Add(wait - wait/5 - late)
}

// queryStamp parses what follows the asker's inbox in a meta query's
// reply subject: ".a.<gather>.<stamp>.<wait in ms>" (Gather); ok false
// for a query of a release before the stamps, or a malformed one.
func queryStamp(tail string) (stamp int64, wait time.Duration, ok bool) {
	rest, found := strings.CutPrefix(tail, ".a.")
	if !found {
		return 0, 0, false
	}
	_, rest, _ = strings.Cut(rest, ".")
	st, ms, _ := strings.Cut(rest, ".")
	stamp, err1 := strconv.ParseInt(st, 10, 64)
	w, err2 := strconv.ParseInt(ms, 10, 64)
	if err1 != nil || err2 != nil || stamp < 0 || w <= 0 || w > int64(time.Hour/time.Millisecond) {
		return 0, 0, false
	}
	return stamp, time.Duration(w) * time.Millisecond, true
}
