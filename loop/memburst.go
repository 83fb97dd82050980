package loop

import (
	"runtime/debug"
	"time"
)

// Connection garbage. Opening a connection allocates several times what
// the connection keeps (the WebSocket upgrade, HELLO and WELCOME, a TLS
// handshake's tens of KiB), and so does closing one (the session's
// state). A burst of them (devices reconnecting after an outage, a fleet
// dropping off) grows the heap to the collector's goal, twice the live
// heap with GOGC=100, and the runtime keeps those pages until its next
// collection updates the scavenger's goal: when the burst leaves the
// process idle, that is the forced collection two minutes later. The
// sessions stay small, the process does not: 19,000 idle WebSocket
// sessions read 2.2 KiB of RSS each for those two minutes and 0.8 KiB
// after them; 5,000 idle TLS sessions 8–10 KiB, of which 4.4 KiB live.
// With the release, the 19,000 read 0.6 KiB each a few seconds after the
// burst.
//
// memBurst reports when a burst is over: at least burstEvents connection
// events (opened, closed, TLS handshakes finished) since the last release,
// none for burstQuiet (past two of the loops' scans, so that the
// output-buffer pool has given back the burst's buffers first: trimPool),
// the last release burstGap ago. The engine then returns the free heap to
// the operating system (debug.FreeOSMemory: a full collection, off the
// loops, which run on meanwhile). Steady traffic, which never goes quiet,
// is left to the runtime.
const (
	burstEvents = 1000
	burstQuiet  = 2500 * time.Millisecond
	burstGap    = time.Minute
)

// memBurst is owned by the engine's tick goroutine.
type memBurst struct {
	seen, released     uint64
	seenAt, releasedAt time.Time
}

// over takes the count of connection events so far and reports, once per
// burst, that a burst has ended. It runs every tick (100 ms).
func (b *memBurst) over(events uint64, now time.Time) bool {
	if events != b.seen {
		b.seen, b.seenAt = events, now
		return false
	}
	if now.Sub(b.seenAt) < burstQuiet || b.seen-b.released < burstEvents || now.Sub(b.releasedAt) < burstGap {
		return false
	}
	b.released, b.releasedAt = b.seen, now
	return true
}

// connEvents is the count memBurst watches.
func (e *Engine) connEvents() uint64 {
	n := e.opens.Load() + e.tlsPool.done.Load()
	for i := range e.closes {
		n += e.closes[i].Load()
	}
	return n
}

// releaseAfterBurst runs on the tick goroutine.
func (e *Engine) releaseAfterBurst(now time.Time) {
	if e.burst.over(e.connEvents(), now) {
		e.memReleases.Add(1)
		go debug.FreeOSMemory()
	}
}
