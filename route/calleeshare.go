package route

import "github.com/edgewamp/edgewamp/proto"

// # A caller's share of a callee that does not keep up
//
// The router sends each INVOCATION as its CALL arrives, and the transport
// refuses the next (ErrPeerBusy: wamp.error.unavailable, "the callee is
// not reading fast enough") once the callee's connection is past its
// high-water mark, whoever the caller. Without more, one caller pipelining
// calls to a callee slower than it takes the callee's whole queue, and
// every other caller of that callee is refused for as long as the flood
// lasts: calls_in_flight bounds a caller's calls, not its part of one
// callee.
//
// So the upper half of a callee's queue is kept for the callers that do
// not hold more than their share of it: while the callee's backlog (a
// BacklogPeer's, bytes the transport holds for it) is past half of the
// mark in force, a new INVOCATION is refused when its caller holds more
// than a fair share of the callee's invocations in flight, counted with
// room for one caller more: n·(k+1) > N, for a caller holding n of the
// callee's N invocations in flight, k callers holding them. A caller
// holding none is always let through (up to the mark, where the
// transport refuses as before). A caller alone keeps the callee's queue
// half full, which keeps a callee that reads busy; a caller whose calls
// the callee answers as fast as they come never sees the check refuse,
// as the backlog stays below half the mark.
//
// The refusal is answered as a callee's wamp.error.unavailable on the
// caller's side (tfUnavailable; on a mesh rsUnavailable): a call to a
// shared registration goes on to another callee, as call re-routing does
// (reroute.go), and when none is left, or the registration has one
// callee, the caller gets wamp.error.unavailable with msgCalleeShare (not
// no_available_callee: the callee is there, only busy). A caller on
// another node counts as one caller per remote session (its session ids
// are unique in the mesh); the mesh's own bounds (max_invocations for a
// node, calls_in_flight on other nodes for a session) do not divide a
// callee between callers. Only the first INVOCATION of a progressive call
// invocation is checked: its further chunks belong to a call the callee
// has, and refusing one would end it.
//
// Cost: a new invocation reads the backlog (BacklogPeer.Backlog, a few
// field loads on the callee's event loop) and a nil check; the count by
// caller (Session.share) exists only from the first time the backlog was
// found past half the mark, built then from the callee's invocations,
// and kept up to date until the callee has no invocation left, or at most
// shareKeepMin with its backlog below half the mark again. An entry is
// dropped when its caller's last invocation ends: at most one per caller
// with invocations in flight to the callee.

// BacklogPeer is a Peer that tells the dealer its outbound backlog, so
// that the callers of a callee that does not keep up share its queue.
// Called on the session's shard, without allocating.
type BacklogPeer interface {
	Peer
	// Backlog returns the bytes queued for the peer that it has not taken
	// yet, and the mark past which Send refuses an INVOCATION (its
	// high-water mark in force; 0: none).
	Backlog() (queued, high int)
}

// msgCalleeShare is the message of a call refused for its caller's share
// of a callee that does not keep up.
const msgCalleeShare = "the callee is not reading fast enough and this caller holds more than its share of its invocations in flight"

// shareKeepMin: a callee's count by caller is dropped once its backlog is
// below half the mark with at most this many invocations in flight (and
// built again, from those, when it is past it again), so that a callee
// that fell behind once does not pay a map update per invocation for as
// long as it is never idle.
const shareKeepMin = 64

// callerID returns the session id of the invocation's caller, on this
// node or another.
func (ic *inCall) callerID() uint64 {
	if ic.caller != nil {
		return ic.caller.id
	}
	return ic.remote.caller.id
}

// addInv records ic as cs's invocation inv.
func (cs *Session) addInv(inv uint64, ic *inCall) {
	if cs.invs == nil {
		cs.invs = map[uint64]*inCall{}
	}
	cs.invs[inv] = ic
	if cs.share != nil {
		cs.share[ic.callerID()]++
	}
}

// dropInv forgets cs's invocation inv, if it has it.
func (cs *Session) dropInv(inv uint64) {
	if cs.share != nil {
		if ic := cs.invs[inv]; ic != nil {
			id := ic.callerID()
			if n := cs.share[id] - 1; n > 0 {
				cs.share[id] = n
			} else {
				delete(cs.share, id)
			}
		}
	}
	n := len(cs.invs)
	delete(cs.invs, inv)
	if shrinkDue(&cs.invsPeak, n, len(cs.invs)) {
		shrinkMap(&cs.invs, &cs.invsPeak)
	}
	if cs.share != nil && len(cs.invs) == 0 {
		cs.share = nil
	}
}

// overShare reports whether callee cs refuses a new invocation from the
// session caller: its backlog is past half its mark and caller holds more
// than its share of its invocations in flight. On cs's shard.
func (cs *Session) overShare(caller uint64) bool {
	if cs.backlog == nil {
		return false
	}
	q, high := cs.backlog.Backlog()
	if high <= 0 || q <= high/2 {
		if cs.share != nil && len(cs.invs) <= shareKeepMin {
			cs.share = nil
		}
		return false
	}
	if cs.share == nil {
		if len(cs.invs) == 0 {
			return false
		}
		cs.share = make(map[uint64]int32)
		for _, ic := range cs.invs {
			cs.share[ic.callerID()]++
		}
	}
	n := int64(cs.share[caller])
	return n > 0 && n*int64(len(cs.share)+1) > int64(len(cs.invs))
}

// shareRefused reports whether the error t is the refusal of a call for
// its caller's share (overShare), here or on the callee's node.
func shareRefused(t *task) bool {
	return t.c != nil && t.c.uri == proto.URIUnavailable && t.c.msg == msgCalleeShare
}
