package route

import (
	"strconv"

	"github.com/edgewamp/edgewamp/proto"
)

// reasonReregistered is the reason of the UNREGISTERED a callee replaced
// by a force_reregister gets (Crossbar.io's).
const reasonReregistered = "wamp.error.unregistered"

// msgForceRemovalsFull is the answer to a force_reregister refused for the
// bound of removals waiting for a replaced callee's shard (takeOver).
const msgForceRemovalsFull = "the event loop of a callee it would replace has as many removals waiting as it takes, or as many of this client's as it may (a quarter of them); retry later"

// REGISTER.Options.force_reregister (Crossbar.io's option, which
// Autobahn|Python sends): a service that restarts while its old session
// lingers (a half-open connection, a process not yet dead) takes its
// procedure over instead of getting wamp.error.procedure_already_exists.
// When the registration (match, uri) has callees here and every one has
// the REGISTER's session's authid and authrole, addCallee replaces it by
// a new registration of the new callee (with its own policy) in one step
// under the realm's lock (takeOver, overDone): no call finds the
// procedure gone meanwhile, and no other session's REGISTER can take it.
// Each old callee is then told on its own shard as by
// wamp.registration.remove_callee (removeOvertaken: an UNREGISTERED with
// reason wamp.error.unregistered to a callee that announced
// registration_revocation; the Dealer must not send it to others); its
// invocations in flight finish. Before, each old callee was taken off on
// its own shard first (the registration deleted with the last) and the
// new callee added once that shard had told the REGISTER's: for a turn of
// that loop, and as long as it was busy, calls got
// wamp.error.no_such_procedure and another authid's REGISTER won the
// procedure (TestForceReregisterHasNoGap). Only the same identity:
// anonymous authids are drawn per session, and another authid's or
// role's callee is not replaced (the REGISTER goes on as without the
// option, and is refused). On a mesh, where a single registration's
// claim and other nodes' callees would have to be handed over, a
// REGISTER that would replace callees is refused
// (wamp.error.option_not_allowed, forceRefusedOnMesh). Cold path
// (REGISTER only).

// forceRefusedOnMesh refuses, on a mesh, a REGISTER with force_reregister
// that would replace callees, and reports whether it did.
func (s *Shard) forceRefusedOnMesh(ss *Session, req uint64, match proto.Match, uri string) bool {
	if s.r.mesh == nil {
		return false
	}
	rm := ss.realm
	rm.mu.RLock()
	reg, ok := rm.regs.get(match, uri)
	replaces := ok && sameIdentity(ss, reg.list()) && (reg.list().len() > 0 || reg.remote.Load() != nil && len(*reg.remote.Load()) > 0)
	rm.mu.RUnlock()
	if !replaces {
		return false
	}
	s.replyError(ss, proto.CodeRegister, req, proto.URIOptionNotAllowed,
		"force_reregister is not supported on a mesh: procedure "+strconv.Quote(uri)+" stays registered")
	return true
}

// sameIdentity reports whether every callee of l has ss's authid and
// authrole.
func sameIdentity(ss *Session, l *calleeList) bool {
	for c := range l.all() {
		if c.s.authID != ss.authID || c.s.authRole != ss.authRole {
			return false
		}
	}
	return true
}

// overtaken is a registration a force_reregister takes over (takeOver).
type overtaken struct {
	reg     *registration
	callees *calleeList // its callees when taken over
	owner   string      // whose share of the removals waiting counts them
	counts  []removeCount
}

// takeOver takes reg, the registration ss's REGISTER with
// force_reregister names, out of rm's table, its wildcard counts and walk
// and its callees' registration bytes (each its hold, regHoldCost: the
// new callee's takes its place, so that an owner at its share can still
// take its procedure over, as when the old callees left first), so that
// addCallee checks the new registration as if reg were gone, and counts the removals of its callees on other shards in their
// bounds of waiting removals (reserveForceRemovals); nil when reg is not
// to be replaced (no callees here, another identity's, a mesh), full when
// those removals do not fit. Under rm.mu, held for writing; putBack
// undoes it, overDone completes it.
func (s *Shard) takeOver(rm *Realm, ss *Session, reg *registration) (over *overtaken, full bool) {
	l := reg.list()
	if s.r.mesh != nil || l.len() == 0 || !sameIdentity(ss, l) {
		return nil, false
	}
	owner := ss.subscriptionOwner()
	counts, ok := reserveForceRemovals(s, l, owner)
	if !ok {
		return nil, true
	}
	rm.regs.del(reg.match, reg.uri)
	for c := range l.all() {
		s.r.regBytes.release(c.s.subOwner, regHoldCost(reg.uri)) // as detachCallee would
	}
	if reg.match == proto.MatchWildcard {
		rm.wildRegs--
		rm.wildRegsBy.drop(reg.walkBy)
		if reg.walked {
			rm.regWalks.drop(reg.walkBy, reg.uri)
		}
	}
	return &overtaken{reg: reg, callees: l, owner: owner, counts: counts}, false
}

// putBack undoes takeOver: the new callee was refused. Under rm.mu.
func (o *overtaken) putBack(r *Router, rm *Realm) {
	reg := o.reg
	rm.regs.put(reg.match, reg.uri, reg)
	for c := range o.callees.all() {
		r.regBytes.restore(c.s.subOwner, regHoldCost(reg.uri))
	}
	if reg.match == proto.MatchWildcard {
		rm.wildRegs++
		rm.wildRegsBy.add(reg.walkBy)
		if reg.walked {
			rm.regWalks.add(reg.walkBy, reg.uri)
		}
	}
	for _, c := range o.counts {
		c.dst.giveBackRemovals(o.owner, c.n)
	}
}

// keepsIndex reports whether the new wildcard registration of ss takes
// over o's index charge: its maker is ss's owner (the same authid, as a
// rule), which the new registration's index counts to as well; nil-safe.
func (o *overtaken) keepsIndex(ss *Session) bool {
	return o != nil && o.reg.match == proto.MatchWildcard && o.reg.maker == ss.registrationOwner()
}

// overDone completes a take-over once ss's new callee is taken: o's
// registration leaves the realm (its id, its index charge unless the new
// one keeps it), marked replaced so that its callees' own removals touch
// only themselves (detachCallee), with its meta events, before the new
// registration's. Under rm.mu.
func (s *Shard) overDone(rm *Realm, o *overtaken, ss *Session) {
	reg := o.reg
	if reg.match == proto.MatchWildcard && !o.keepsIndex(ss) {
		s.r.regBytes.release(reg.maker, wildcardIndexCost(reg.match, reg.uri))
	}
	reg.walked = false
	reg.replaced = true
	rm.dropRegID(reg.id)
	rm.regChanged(reg.match, reg.uri)
	var last uint64
	for c := range o.callees.all() {
		rm.metaPush(metaItem{topic: metaRegOnUnregister, sess: c.s.id, id: reg.id})
		last = c.s.id
	}
	rm.metaPush(metaItem{topic: metaRegOnDelete, sess: last, id: reg.id})
}

// removeOvertaken takes each callee of o off it on its own shard, as
// remove_callee does (registrationRemoved: the UNREGISTERED with reason
// wamp.error.unregistered, the session's record of it), once the new
// registration stands; those of s at once (ss itself, when it replaces
// its own registration: before its REGISTERED). Owned by shard.
func (s *Shard) removeOvertaken(ss *Session, o *overtaken) {
	for c := range o.callees.all() {
		x := c.s
		if x.shard == s {
			s.registrationRemoved(x, o.reg, reasonReregistered)
			continue
		}
		if x.shard.Do(func() {
			x.shard.registrationRemoved(x, o.reg, reasonReregistered)
			x.shard.giveBackRemovals(o.owner, 1)
		}) != nil {
			x.shard.giveBackRemovals(o.owner, 1) // that loop stopped: its sessions are gone with it
		}
	}
}

// removeCount is how many removals of a force_reregister wait for dst.
type removeCount struct {
	dst *Shard
	n   int64
}

// reserveForceRemovals counts, in the removeBacklog of each shard other
// than s holding a callee of l, removeOverhead for each of them that
// removeOvertaken posts there, for owner (the REGISTER's session's),
// within maxRemoveBacklog and owner's share of it (removeFits, as
// postRemoval), and reports whether all fit, with what it counted; when
// one does not, what it counted is given back. Before 4d58cf6, these
// removals were not bounded. Under the realm's lock (removeMu is a leaf).
func reserveForceRemovals(s *Shard, l *calleeList, owner string) ([]removeCount, bool) {
	var counts []removeCount // one per shard: a few
next:
	for c := range l.all() {
		x := c.s
		if x.shard == s {
			continue
		}
		for i := range counts {
			if counts[i].dst == x.shard {
				counts[i].n++
				continue next
			}
		}
		counts = append(counts, removeCount{x.shard, 1})
	}
	for i, c := range counts {
		c.dst.removeMu.Lock()
		fits := c.dst.removeFits(owner, c.n*removeOverhead)
		c.dst.removeMu.Unlock()
		if !fits {
			for _, d := range counts[:i] {
				d.dst.giveBackRemovals(owner, d.n)
			}
			return nil, false
		}
	}
	return counts, true
}

// giveBackRemovals gives back what reserveForceRemovals counted for n
// removals of owner's posted to s, as s runs them (or once it refused
// them).
func (s *Shard) giveBackRemovals(owner string, n int64) {
	s.removeMu.Lock()
	s.removeGone(owner, n*removeOverhead)
	s.removeMu.Unlock()
}
