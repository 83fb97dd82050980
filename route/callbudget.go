package route

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// DefaultCallsTotal is Config.MaxCallsTotal's default: 2^20 calls, about
// 250 MB at the 216-253 bytes of heap a call in flight holds across its
// caller and callee (measured: 8 sessions of one address with 65,536 calls
// each to a callee that never answers, 238 bytes a call, 118 MB; 253 on a
// shared registration, which keeps a copy for rerouting).
const DefaultCallsTotal = 1 << 20

// callBudget counts the calls in flight on the router (Config.MaxCallsTotal),
// and each owner's (retainOwner, as the subscriptions' and testaments'
// shares): sessions of every shard add and end them. The call path only
// reads and moves atomic counters: the owner's record is looked up once,
// at a session's first CALL (callOwnerOf), under mu.
type callBudget struct {
	total atomic.Int64 // calls in flight, every owner's and none's
	mu    sync.Mutex
	by    map[string]*callOwner // guarded by mu; an owner goes with its last session
	// byPeak: the most entries by held since it was last checked
	// (shrinkDue). Guarded by mu.
	byPeak int
}

// callOwner is one owner's count of calls in flight.
type callOwner struct {
	n atomic.Int64
	// mesh counts those of n held by other nodes' callees (meshCallAdded):
	// at most a quarter of Config.MaxMeshInvocations (meshCallRoom).
	mesh     atomic.Int64
	key      string // static
	sessions int    // sessions holding it (Session.callOwn); guarded by callBudget.mu
}

// callBudgetRoom reports whether ss may have one more call in flight: the
// router's calls are below Config.MaxCallsTotal, and its owner's below a
// quarter of it and below the room left free. The last keeps owners that
// fill the router from shutting out the others: k owners that take all
// they may hold at most k/(k+1) of the total, each below what is left,
// and a newcomer gets part of that (before, four owners at their
// quarters held all of it, and every other call was refused until some
// ended). Checked, then counted by callAdded: sessions on other shards
// checking at the same moment may take the router (or an owner sharing
// shards) one call per shard past the bound. Owned by shard.
func (s *Shard) callBudgetRoom(ss *Session) bool {
	max := s.r.cfg.MaxCallsTotal
	total := s.r.calls.total.Load()
	if total >= max {
		return false
	}
	o := s.r.calls.ownerOf(ss)
	if o == nil {
		return true
	}
	n := o.n.Load()
	return n < max/4 && n < max-total
}

// callAdded counts a call of ss put in ss.calls. Owned by shard.
func (r *Router) callAdded(ss *Session) {
	r.calls.total.Add(1)
	if o := ss.callOwn; o != nil {
		o.n.Add(1)
	}
}

// callsEnded counts n calls of ss taken out of ss.calls. Owned by shard.
func (r *Router) callsEnded(ss *Session, n int64) {
	r.calls.total.Add(-n)
	if o := ss.callOwn; o != nil {
		o.n.Add(-n)
	}
}

// meshCallRoom reports whether ss may have one more call in flight on
// another node's callee: below Config.MaxMeshCalls, and its owner
// (ownerOf, set by callBudgetRoom before) below a quarter of
// Config.MaxMeshInvocations, the bound of the callee's node (the nodes of
// a mesh are configured alike). A callee's node counts every remote
// caller's invocations in one budget, max_invocations: before, only the
// session's bound applied, so one client's 16 sessions (at the defaults)
// filled it with calls to a callee of its own that never answers, and
// every other node's calls to any callee there were refused
// wamp.error.unavailable. Four owners still fill it (unlike
// Config.MaxCallsTotal, whose owners also stay below the room left free:
// the callee's node's budget is not known here). Owned by shard; two
// atomic loads on a call to another node.
func (s *Shard) meshCallRoom(ss *Session) bool {
	if ss.meshCalls >= s.r.cfg.MaxMeshCalls {
		return false
	}
	o := ss.callOwn
	return o == nil || o.mesh.Load() < int64(max(s.r.cfg.MaxMeshInvocations/4, 1))
}

// meshCallAdded counts a call of ss that another node's callee holds
// (ss.meshCalls, and its owner's). Owned by ss's shard.
func (ss *Session) meshCallAdded() {
	ss.meshCalls++
	if o := ss.callOwn; o != nil {
		o.mesh.Add(1)
	}
}

// meshCallEnded uncounts one (meshCallAdded). Owned by ss's shard.
func (ss *Session) meshCallEnded() {
	ss.meshCalls--
	if o := ss.callOwn; o != nil {
		o.mesh.Add(-1)
	}
}

// ownerOf returns the record ss's calls count in, fixed at its first CALL
// until it leaves (dropCallOwner); nil for an InProcessPeer's session (the
// HTTP gateway's, which carries many clients' calls and has limits of its
// own), which only the total bounds. An authid's record is its realm's:
// users are configured per realm, so one realm's "alice" is not
// another's (an address's is every realm's: one client). Owned by ss's
// shard.
func (b *callBudget) ownerOf(ss *Session) *callOwner {
	if ss.callOwnSet {
		return ss.callOwn
	}
	ss.callOwnSet = true
	if _, inProcess := ss.peer.(InProcessPeer); inProcess {
		return nil
	}
	key := ss.retainOwner()
	if key == "" {
		return nil
	}
	b.mu.Lock()
	o := b.by[key]
	if o == nil {
		if b.by == nil {
			b.by = map[string]*callOwner{}
		}
		o = &callOwner{key: key}
		b.by[key] = o
	}
	o.sessions++
	b.mu.Unlock()
	ss.callOwn = o
	return o
}

// dropCallOwner lets a leaving session's owner record go, once its calls
// are ended and counted out (leaveDealer). Owned by ss's shard.
func (b *callBudget) dropCallOwner(ss *Session) {
	o := ss.callOwn
	ss.callOwn, ss.callOwnSet = nil, false
	if o == nil {
		return
	}
	b.mu.Lock()
	if o.sessions--; o.sessions == 0 {
		n := len(b.by)
		delete(b.by, o.key)
		if shrinkDue(&b.byPeak, n, len(b.by)) {
			shrinkMap(&b.by, &b.byPeak)
		}
	}
	b.mu.Unlock()
}

// callsTotalRefused answers a CALL past Config.MaxCallsTotal or its
// owner's room (callBudgetRoom), counted; the first refusal of a session
// is logged.
func (s *Shard) callsTotalRefused(ss *Session, req uint64, progress bool) {
	s.stats.CallsRefusedTotal.Add(1)
	if ss.wildLogged&8 == 0 {
		ss.wildLogged |= 8
		owner := ""
		if ss.callOwn != nil {
			owner = ss.callOwn.key
		}
		s.r.log.Warn("refusing calls: the router holds as many calls in flight as it takes, or this client as many as it may (a quarter of them, and fewer than the router has left free; limits.calls_in_flight_total; logged once per session)",
			"session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "owner", logCut(owner), "limit", s.r.cfg.MaxCallsTotal)
	}
	s.rejectCall(ss, req, progress, proto.URIUnavailable, "the router holds as many calls in flight as it takes (limits.calls_in_flight_total "+strconv.FormatInt(s.r.cfg.MaxCallsTotal, 10)+"), or this client address or authid as many as it may: a quarter of it, and fewer than the router has left free")
}
