package loop

import (
	"syscall"
)

// File descriptors, and what guarantees what.
//
// The engine never stops for want of one. gnet's acceptor would stop the
// whole engine, every session with it, when accept fails with EMFILE (or
// ENFILE, ENOBUFS, ENOMEM); so gnet accepts nothing: the engine's own
// acceptors do (accept.go), and one whose accept fails pauses (5 ms,
// doubling to 1 s while it keeps failing), logs a line and counts it
// (Stats.AcceptErrors), while the connections wait in the listen backlog and
// the sessions already joined carry on. So does one whose accepted
// connection gnet cannot take: gnet duplicates the descriptor, which fails
// with EMFILE where accept took the last free one (the connection is
// closed; enrollFailed). This holds whatever holds the
// descriptors, however many connections arrive and however starved the
// loops are.
//
// The engine keeps its connections' descriptors within a budget, so that
// they never take the last fdReserve of the open-file limit: those are for
// the rest of the process. An acceptor counts a connection as it accepts
// it, before any loop sees it, and closes it at once, unanswered, when the
// budget is spent (below it, past a listener's MaxConns, the connection gets
// the polite refusal: HTTP 503, RawSocket error). Not counted, and kept
// within the limit by the budget's margin instead: at most one descriptor
// per listener (accepted, being closed past the budget) and one per
// enrollment in flight (gnet dups the descriptor and closes ours once the
// loop has it; enrollWindow of them at most). Every connection holds one
// descriptor, its TCP socket, TLS ones included (tls.go).
//
// The rest of the process shares fdReserve, and the engine does not count
// it: the listeners, each loop's epoll and eventfd, the send rings, the Go
// runtime's poller, log and config files; the HTTP gateway, whose
// connections are bounded by its own max_connections (not by this limit);
// the embedded NATS server (routes, leaf nodes, JetStream's files). Should
// they take every free descriptor, the engine's accepts fail and pause as
// above and nothing else of the engine is affected; what they do themselves
// is theirs to handle (net/http and nats-server pause their accept loops on
// EMFILE and ENFILE, which Go calls temporary, but on ENOBUFS or ENOMEM
// net/http's Serve returns and nats-server retries without a pause; a file
// that cannot be opened is an error for whoever opens it). Under a limit so
// small that the budget's floor (16 connections) passes it, there is no
// reserve; the engine still does not stop.
const fdReserve = 64

// enrollWindow bounds the enrollments in flight (accepted connections on
// their way to a loop's OnOpen) under a soft open-file limit: enough to keep
// the loops fed during a burst of connects, few under a small limit.
func enrollWindow(soft uint64) int {
	return int(min(max(soft/64, 4), 64))
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
	return max(int64(soft)-fdReserve-int64(listeners+enrollWindow(soft)), 16)
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
// because of it. Safe for concurrent use.
func (e *Engine) FDs() (held, budget int64, refused uint64) {
	return e.fds.Load(), e.fdCap, e.fdRefused.Load()
}
