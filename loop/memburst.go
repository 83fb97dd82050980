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
// then none for a while, the last burst's release burstGap ago. The engine
// then returns the free heap to the operating system (debug.FreeOSMemory:
// a full collection, off the loops, which run on meanwhile). It does so
// twice per burst:
//   - early, after burstQuietEarly: the garbage of the upgrades, joins and
//     TLS handshakes (tens of KiB each) is free by then;
//   - finally, after burstQuiet, past two of the loops' scans, so that the
//     output-buffer pool has given back the burst's buffers too (trimPool).
//
// With the final release alone, 5,000 idle TLS sessions read 10 KiB each
// for the 2.5 s after their burst, against 6 KiB after the early one.
// Steady traffic, which never goes quiet, is left to the runtime.
const (
	burstEvents     = 1000
	burstQuietEarly = 500 * time.Millisecond
	burstQuiet      = 2500 * time.Millisecond
	burstGap        = time.Minute
)

// memBurst is owned by the engine's tick goroutine.
type memBurst struct {
	seen, released     uint64
	seenAt, releasedAt time.Time
	early              bool // the current burst had its early release
}

// over takes the count of connection events so far and reports when a
// burst has ended: at most twice per burst (the early and the final
// release; a burst that resumes after its early release gets no second
// early one). It runs every tick (100 ms).
func (b *memBurst) over(events uint64, now time.Time) bool {
	if events != b.seen {
		b.seen, b.seenAt = events, now
		return false
	}
	quiet := now.Sub(b.seenAt)
	if quiet < burstQuietEarly || b.seen-b.released < burstEvents || now.Sub(b.releasedAt) < burstGap {
		return false
	}
	if quiet < burstQuiet {
		if b.early {
			return false
		}
		b.early = true
		return true
	}
	b.released, b.releasedAt, b.early = b.seen, now, false
	return true
}

// connEvents is the count memBurst watches.
func (e *Engine) connEvents() uint64 {
	n := e.opens.Load() + e.tlsPool.done.Load()
	for _, ln := range e.lns {
		for i := range ln.closes {
			n += ln.closes[i].Load()
		}
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
