package route

import (
	"strconv"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// reasonReregistered is the reason of the UNREGISTERED a callee replaced
// by a force_reregister gets (Crossbar.io's).
const reasonReregistered = "wamp.error.unregistered"

// forceReregister handles REGISTER.Options.force_reregister (Crossbar.io's
// option, which Autobahn|Python sends): a service that restarts while its
// old session lingers (a half-open connection, a process not yet dead)
// takes its procedure over instead of getting
// wamp.error.procedure_already_exists. When the registration (match, uri)
// has callees here and every one has ss's authid and authrole, each is
// taken off it on its own shard as by wamp.registration.remove_callee (an
// UNREGISTERED with reason wamp.error.unregistered to a callee that
// announced registration_revocation; the Dealer must not send it to
// others), and the REGISTER is then carried out (addCallee, with its own
// policy) once all are off. Only the same identity: anonymous authids are
// drawn per session, and another authid's or role's callee is not
// replaced (the REGISTER goes on as without the option, and is refused).
// On a mesh, where a single registration's claim and other nodes'
// callees would have to be handed over, a REGISTER that would replace
// callees is refused (wamp.error.option_not_allowed). It reports whether
// it answered or will answer the REGISTER. Cold path (REGISTER only).
func (s *Shard) forceReregister(ss *Session, req uint64, match proto.Match, invoke proto.Invoke, uri string, ce callee) bool {
	rm := ss.realm
	var old []*Session
	foreign, remote := false, false
	rm.mu.RLock()
	reg, ok := rm.regs.get(match, uri)
	if ok {
		for c := range reg.list().all() {
			if c.s.authID != ss.authID || c.s.authRole != ss.authRole {
				foreign = true
				break
			}
			old = append(old, c.s)
		}
		if p := reg.remote.Load(); p != nil && len(*p) > 0 {
			remote = true
		}
	}
	rm.mu.RUnlock()
	switch {
	case foreign || len(old) == 0 && !remote:
		return false // as without the option: refused, or nothing to replace
	case s.r.mesh != nil:
		s.replyError(ss, proto.CodeRegister, req, proto.URIOptionNotAllowed,
			"force_reregister is not supported on a mesh: procedure "+strconv.Quote(uri)+" stays registered")
		return true
	}
	owner := ss.subscriptionOwner()
	if !reserveForceRemovals(s, old, owner) {
		s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable,
			"the event loop of a callee it would replace has as many removals waiting as it takes, or as many of this client's as it may (a quarter of them); retry later")
		return true
	}
	var pending atomic.Int32
	pending.Store(int32(len(old)))
	finish := func() {
		if ss.state == stEstablished {
			s.addCallee(ss, req, match, invoke, uri, ce)
		}
	}
	for _, x := range old {
		done := func() {
			x.shard.registrationRemoved(x, reg, reasonReregistered)
			if x.shard != s {
				x.shard.giveBackRemovals(owner, 1)
			}
			if pending.Add(-1) != 0 {
				return
			}
			if x.shard == s {
				finish()
			} else {
				s.Do(finish) // refused when this loop stopped: ss is gone with it
			}
		}
		if x.shard == s {
			done()
		} else if x.shard.Do(done) != nil {
			x.shard.giveBackRemovals(owner, 1)
			if pending.Add(-1) == 0 {
				s.Do(finish) // that loop stopped: its sessions are gone with it
			}
		}
	}
	return true
}

// reserveForceRemovals counts, in the removeBacklog of each shard other
// than s holding a session of old, removeOverhead for each of them that
// forceReregister posts there, for owner (the REGISTER's session's),
// within maxRemoveBacklog and owner's share of it (removeFits, as
// postRemoval), and reports whether all fit; when one
// does not, what it counted is given back. Before, these removals were
// not bounded: while a callee's loop was busy every repeat of a REGISTER
// with force_reregister posted one for each callee there, and one
// session's 20,000 of them over 64 callees held 40 MiB.
func reserveForceRemovals(s *Shard, old []*Session, owner string) bool {
	type count struct {
		dst *Shard
		n   int64
	}
	var counts []count // one per shard: a few
next:
	for _, x := range old {
		if x.shard == s {
			continue
		}
		for i := range counts {
			if counts[i].dst == x.shard {
				counts[i].n++
				continue next
			}
		}
		counts = append(counts, count{x.shard, 1})
	}
	for i, c := range counts {
		c.dst.removeMu.Lock()
		fits := c.dst.removeFits(owner, c.n*removeOverhead)
		c.dst.removeMu.Unlock()
		if !fits {
			for _, d := range counts[:i] {
				d.dst.giveBackRemovals(owner, d.n)
			}
			return false
		}
	}
	return true
}

// giveBackRemovals gives back what reserveForceRemovals counted for n
// removals of owner's posted to s, as s runs them (or once it refused
// them).
func (s *Shard) giveBackRemovals(owner string, n int64) {
	s.removeMu.Lock()
	s.removeGone(owner, n*removeOverhead)
	s.removeMu.Unlock()
}
