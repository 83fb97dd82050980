package loop

import (
	"syscall"
)

// File descriptors are the one resource whose exhaustion gnet does not
// survive: an accept that fails with EMFILE stops the whole engine, every
// session with it. So the engine keeps its connections' descriptors within a
// budget below the open-file limit, with room left for what it cannot count:
//
//   - connections the kernel has queued on a listener and gnet accepts in a
//     burst before any reaches OnOpen: at most the listen backlog, which
//     Start sets on every listener (backlogFor);
//   - descriptors that are not connections (listeners, epoll and eventfd per
//     loop, log and config files, pprof and other servers): fdReserve.
//
// Past the budget a connection is closed as soon as it is accepted, with no
// reply; below it, past a listener's MaxConns, it gets the polite refusal
// (HTTP 503, RawSocket error). Every connection holds one descriptor, its
// TCP socket, TLS ones included (tls.go).
const fdReserve = 64

// backlogFor returns the listen backlog under a soft open-file limit: 512
// (enough for bursts of thousands of connects a second; a client whose SYN
// finds the queue full retries) and less when the limit is small, so that
// the budget is not mostly margin.
func backlogFor(soft uint64) int {
	return int(min(max(soft/32, 16), 512))
}

// fileLimit raises the soft open-file limit to the hard one (the Go runtime
// does too, since Go 1.19, but whatever started us may have lowered it
// since) and returns the soft limit in force.
func fileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	return rl.Cur, rl.Max, nil
}

// fdBudget returns how many descriptors connections may hold under a soft
// open-file limit, with listeners listeners.
func fdBudget(soft uint64, listeners int) int64 {
	if soft > 1<<40 {
		soft = 1 << 40 // RLIM_INFINITY
	}
	return max(int64(soft)-fdReserve-int64(listeners*backlogFor(soft)), 16)
}

// takeFDs counts n more descriptors held by a connection; false (and
// nothing counted) when that would pass the budget.
func (e *Engine) takeFDs(n int64) bool {
	if e.fds.Add(n) > e.fdCap {
		e.fds.Add(-n)
		e.fdRefused.Add(1)
		return false
	}
	return true
}

// FDs returns the descriptors the engine's connections hold, the budget
// they are kept within, and how many connections were closed unanswered
// because of it.
func (e *Engine) FDs() (held, budget int64, refused uint64) {
	return e.fds.Load(), e.fdCap, e.fdRefused.Load()
}
