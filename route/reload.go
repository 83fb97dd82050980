package route

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Reload installs a new set of realm configurations (SIGHUP). New sessions
// see it at once. Existing sessions are re-checked on their shards: their
// authorization caches are dropped, and a session is told GOODBYE
// (wamp.close.killed) when its realm is gone, when it joined anonymously
// and the realm no longer allows that or gives anonymous sessions another
// role, or when its static user was removed, lost its role, or no longer
// holds the credential the session logged in with (a password, secret or
// key changed or removed, the method no longer offered); a session that
// stays loses the registrations and subscriptions its role may no longer
// make, and its calls in flight its role may no longer make end (reauth:
// in bounded turns, and only for sessions whose role's grants may have
// changed). It returns once every shard has dropped its sessions'
// cached decisions, checked their identities and begun that re-check,
// and the retained events have been re-checked, off the shards (up to
// reloadWait, 5 s, then it logs and returns): a request handled after it
// returns is judged by the new configuration. Do not call it
// from a shard's goroutine (an event loop): it would wait the 5 s for
// itself. It returns an error, and changes nothing, when the new
// configuration is invalid.
func (r *Router) Reload(realms []RealmConfig) error {
	var errs []error
	seen := map[string]bool{}
	for _, rc := range realms {
		if !proto.ValidURI([]byte(rc.Name), proto.URILoose) {
			errs = append(errs, fmt.Errorf("route: realm %q is not a valid URI", rc.Name))
		}
		if seen[rc.Name] {
			errs = append(errs, fmt.Errorf("route: realm %q is configured twice", rc.Name))
		}
		seen[rc.Name] = true
	}
	if len(realms) == 0 {
		errs = append(errs, errors.New("route: at least one realm is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	old := *r.realms.Load()
	next := make(map[string]*Realm, len(realms))
	// The authorizers the realms had, for the re-check to skip the
	// sessions whose role's grants stayed as they were (sameGrants).
	prev := make(map[*Realm]Authorizer, len(old))
	for _, rc := range realms {
		if rm := old[rc.Name]; rm != nil {
			prev[rm] = rm.conf().Authorizer
			rm.setConfig(rc)
			next[rc.Name] = rm
		} else {
			next[rc.Name] = newRealm(r, rc)
		}
	}
	r.realms.Store(&next)
	r.mu.Unlock()
	// The retained events are re-checked once every shard has re-checked
	// its sessions, so that none is retained afterwards under a decision
	// a session's authorization cache still held from before; and off the
	// event loops: the walk takes 20-120 ms over a realm's 65,536 retained
	// topics, which the last shard's loop spent in one turn at every
	// reload, its sessions' calls and events waiting (the realm's lock is
	// taken only to copy the list and to drop, as before).
	done := make(chan struct{})
	var shardsDone atomic.Bool // for the warning below
	r.onEveryShard(func(s *Shard) { s.reauth(prev) }, func(s *Shard) {
		shardsDone.Store(true)
		go func() {
			defer close(done)
			s.reauthRetained()
		}()
	})
	// Reload returns once the shards have: a session's REGISTER,
	// SUBSCRIBE, CALL or PUBLISH after it is judged by the new grants.
	// Before, it returned at once, and the sessions' cached decisions
	// let such requests through by the old ones until their shard came
	// to the re-check (systemctl reload had returned by then). Bounded:
	// a shard that does not come to it in reloadWait (a loop held up, or
	// Reload called from a shard's own goroutine, which it must not be)
	// is logged and not waited for further.
	t := time.NewTimer(reloadWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if shardsDone.Load() {
			r.log.Warn("reload: the retained events have not all been re-checked against the new configuration yet; returning without waiting further (the re-check goes on)",
				"waited", reloadWait)
			break
		}
		r.log.Warn("reload: the event loops have not re-checked the open sessions against the new configuration yet; returning without waiting further",
			"waited", reloadWait)
	}
	return nil
}

// reloadWait bounds how long Reload waits for the shards' re-check. A
// variable for the tests.
var reloadWait = 5 * time.Second

// onEveryShard runs each on every shard's goroutine and then, once every
// shard has, last on the goroutine of the shard that ran it last. A shard
// without a running executor has no session to run each for; if it is the
// last, last runs on the caller's goroutine. Never blocks.
func (r *Router) onEveryShard(each, last func(*Shard)) {
	left := new(atomic.Int64)
	left.Store(int64(len(r.shards)))
	done := func(s *Shard) {
		if left.Add(-1) == 0 {
			last(s)
		}
	}
	for _, sh := range r.shards {
		if sh.Do(func() { each(sh); done(sh) }) != nil {
			done(sh)
		}
	}
}

// reauth re-checks this shard's sessions after a reload. Every session's
// authorization cache is dropped and its identity checked (one lookup
// each) at once; the sessions whose role's grants may have changed
// (sameGrants with prev, the realms' authorizers before the reload) then
// have their calls, registrations and subscriptions re-checked in turns
// of at most recheckTurn entries (recheckSlice), so that other sessions'
// messages are handled in between: a few sessions holding their 65,536
// subscriptions each made every reload hold the loop for 100-200 ms,
// even one that changed no grant of theirs. Nothing is let through by
// the old grants meanwhile: a REGISTER, SUBSCRIBE or CALL, an event to a
// subscription or an invocation to a registration not re-checked yet is
// judged by the new configuration (the caches are gone), and a chunk of a
// progressive call still to be re-checked is checked as it comes
// (callContinue).
func (s *Shard) reauth(prev map[*Realm]Authorizer) {
	for ss := range s.sessions() {
		ss.dropAuthz()
		if ss.state != stEstablished {
			continue
		}
		if why := ss.stillValid(s.r); why != "" {
			s.r.log.Info("disconnecting a session after reload", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "reason", why)
			s.revoke(ss, why)
			continue
		}
		if old, ok := prev[ss.realm]; ok && sameGrants(old, ss.realm.conf().Authorizer, ss.authRole) {
			continue
		}
		s.queueRecheck(ss)
	}
	if len(s.rechecks) > 0 && !s.recheckPosted {
		s.recheckSlice()
	}
}

// recheckTurn bounds the entries (calls, registrations, subscriptions) a
// reload's re-check walks in one turn of the shard: about a millisecond.
const recheckTurn = 4096

// recheck is a session's re-check after a reload: the ids of the calls,
// registrations and subscriptions it held then (those made since were
// authorized by the new configuration), walked in turns.
type recheck struct {
	ss                   *Session // nil once superseded by a later reload's
	calls, regs, subs    []uint64
	nCalls, nRegs, nSubs int // ended or revoked so far
	firstCall, firstReg  string
	firstSub             string
}

// queueRecheck queues ss's re-check, replacing one a previous reload left
// unfinished (the new one covers what it held, and more).
func (s *Shard) queueRecheck(ss *Session) {
	if ss.recheck != nil {
		ss.recheck.ss = nil
	}
	rc := &recheck{ss: ss}
	if ss.realm.conf().Authorizer != nil {
		rc.calls = make([]uint64, 0, len(ss.calls))
		for id := range ss.calls {
			rc.calls = append(rc.calls, id)
		}
		rc.regs = make([]uint64, 0, len(ss.regs))
		for id := range ss.regs {
			rc.regs = append(rc.regs, id)
		}
		rc.subs = make([]uint64, 0, len(ss.subs))
		for id := range ss.subs {
			rc.subs = append(rc.subs, id)
		}
	} // else everything is allowed: nothing to end
	ss.recheck = rc
	s.rechecks = append(s.rechecks, rc)
}

// recheckSlice runs one turn of the queued re-checks, at most recheckTurn
// entries, and posts the next turn to the shard if any are left.
func (s *Shard) recheckSlice() {
	s.recheckPosted = false
	budget := recheckTurn
	for len(s.rechecks) > 0 && budget > 0 {
		rc := s.rechecks[0]
		if rc.ss != nil {
			budget = s.recheckSome(rc, budget)
			if budget == 0 && (len(rc.calls) > 0 || len(rc.regs) > 0 || len(rc.subs) > 0) {
				break
			}
			s.recheckDone(rc)
		}
		s.rechecks[0] = nil
		s.rechecks = s.rechecks[1:]
	}
	if len(s.rechecks) == 0 {
		s.rechecks = nil
	}
	if h := s.recheckHook; h != nil {
		h(recheckTurn-budget, len(s.rechecks))
	}
	if len(s.rechecks) == 0 {
		return
	}
	s.recheckPosted = true
	next := func() {
		if s.recheckPosted {
			s.recheckSlice()
		}
	}
	if h := s.recheckPost; h != nil {
		h(next)
		return
	}
	if s.yieldTurn(next) != nil {
		s.recheckPosted = false // the shard stopped: its sessions are gone
		s.rechecks = nil
	}
}

// recheckSome re-checks up to budget of rc's entries and returns the
// budget left.
func (s *Shard) recheckSome(rc *recheck, budget int) int {
	ss := rc.ss
	for budget > 0 && len(rc.calls) > 0 {
		if ss.state != stEstablished {
			return budget
		}
		req := rc.calls[0]
		rc.calls = rc.calls[1:]
		budget--
		if oc := ss.calls[req]; oc != nil && s.endUnauthorizedCall(ss, req, oc) {
			if rc.nCalls == 0 {
				rc.firstCall = oc.procedure()
			}
			rc.nCalls++
		}
	}
	for budget > 0 && len(rc.regs) > 0 {
		if ss.state != stEstablished {
			return budget // a revocation it could not take ended it (and its registrations)
		}
		id := rc.regs[0]
		rc.regs = rc.regs[1:]
		budget--
		if ref, ok := ss.regs[id]; ok && !ss.authorizePattern(ActionRegister, ref.reg.match, []byte(ref.reg.uri)) {
			if rc.nRegs == 0 {
				rc.firstReg = ref.reg.uri
			}
			rc.nRegs++
			s.revokeRegistration(ss, ref.reg, proto.URINotAuthorized)
		}
	}
	for budget > 0 && len(rc.subs) > 0 {
		if ss.state != stEstablished {
			return budget
		}
		id := rc.subs[0]
		rc.subs = rc.subs[1:]
		budget--
		if sub := ss.subs[id].sub; sub != nil && !ss.authorizePattern(ActionSubscribe, sub.match, []byte(sub.uri)) {
			if rc.nSubs == 0 {
				rc.firstSub = sub.uri
			}
			rc.nSubs++
			s.revokeSubscription(ss, sub, proto.URINotAuthorized)
		}
	}
	return budget
}

// recheckDone ends rc: one log line per session and kind, not per URI (a
// session may hold 65,536 of each).
func (s *Shard) recheckDone(rc *recheck) {
	ss := rc.ss
	if ss.recheck == rc {
		ss.recheck = nil
	}
	rc.ss = nil
	if rc.nCalls > 0 {
		s.r.log.Info("ending calls after reload: the role may no longer make them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", rc.nCalls, "procedure", rc.firstCall)
	}
	if rc.nRegs > 0 {
		s.r.log.Info("revoking registrations after reload: the role may no longer register them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", rc.nRegs, "procedure", rc.firstReg)
	}
	if rc.nSubs > 0 {
		s.r.log.Info("revoking subscriptions after reload: the role may no longer subscribe to them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", rc.nSubs, "topic", rc.firstSub)
	}
}

// sameGrants reports whether role is granted the same under the
// authorizers a and b (a realm's before and after a reload), as far as
// can be told cheaply: both none, the same one, or two RBACs in which the
// role's permissions are the same (their fingerprints, made when each was
// built). Another Authorizer is opaque: its decisions may have changed.
func sameGrants(a, b Authorizer, role string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	za, ok1 := a.(*RBAC)
	zb, ok2 := b.(*RBAC)
	if !ok1 || !ok2 {
		return false
	}
	return za == zb || za.fingerprint(role) == zb.fingerprint(role)
}

// endUnauthorizedCall ends, after a reload, a call in flight that the
// caller's role may no longer make, and reports whether it did: the
// caller gets ERROR wamp.error.not_authorized and the callee INTERRUPT
// (killnowait), as for a router-side timeout. Before, a progressive call
// went on exchanging chunks and results after both grants were gone. (A
// callee whose registration a reload revoked finishes the invocations it
// has if their callers may still call: they were allowed when made, and
// no new one reaches it.)
//
// The re-check also revokes what a session still holds that its role may
// no longer make (recheckSome):
//
//   - Registrations would go on holding their procedures (another
//     callee's REGISTER refused as procedure_already_exists) for calls that
//     all fail.
//   - Subscriptions no longer deliver (the delivery-time check, mayReceive,
//     withholds their events) but would stay in the tables: listed and
//     counted by the meta API, holding the mesh's interest in their topic,
//     and a place within the session's bound.
//
// Each goes as an UNREGISTER or UNSUBSCRIBE would, with its meta events;
// a client that announced registration_revocation or
// subscription_revocation is told, others are not (as the calls and
// events they can no longer have were not), and the session stays.
func (s *Shard) endUnauthorizedCall(ss *Session, req uint64, oc *outCall) bool {
	proc := oc.procedure()
	if ss.authorize(ActionCall, []byte(proc)) {
		return false
	}
	ss.endCall(req, oc)
	s.replyError(ss, proto.CodeCall, req, proto.URINotAuthorized, "the call was ended: the role may no longer call "+strconv.Quote(proc)+" (configuration reloaded)")
	s.stopInvocation(oc, proto.CancelKillNoWait, proto.URINotAuthorized)
	return true
}

// reauthRetained drops, after a reload, the retained events whose
// publisher may no longer publish them: its identity would no longer be
// let in (the reasons a session is ended: its user removed or without
// the role, the credential it logged in with changed or withdrawn, the
// realm's anonymous settings changed), or its role may no longer publish
// to the topic (the check of a PUBLISH). A retained event went on being
// handed out to every get_retained with the grant it was published under.
// Events copied from other nodes of a mesh are their publisher's node's
// to check: it asks the others to drop their copies of what it drops.
// It runs off the event loops (Reload), s being the shard whose stats
// count the drops and on which the mesh is asked.
func (s *Shard) reauthRetained() {
	for _, rm := range *s.r.realms.Load() {
		cfg := rm.conf()
		valid := map[*retainer]string{} // identity checks, once per publisher
		n, topic, why, ids := rm.dropRetained(func(topic string, re *retainedEvent) string {
			by := re.by
			if by == nil {
				return ""
			}
			w, ok := valid[by]
			if !ok {
				w = identityValid(s.r, rm, by.authMethod, by.authProvider, by.authID, by.authRole, by.staticCred, by.realmAuth)
				if w == "" {
					w = s.r.withdrawn(by.cred)
				}
				valid[by] = w
			}
			if w != "" {
				return w
			}
			if az := cfg.Authorizer; az != nil && !s.r.askAuthorize(az, rm.name, by.authRole, ActionPublish, topic) {
				return "role " + by.authRole + " may no longer publish to the topic"
			}
			return ""
		})
		if n == 0 {
			continue
		}
		s.stats.RetainedRevoked.Add(uint64(n))
		s.r.log.Info("dropped retained events after reload: their publishers may no longer publish them", "realm", rm.name, "count", n, "topic", topic, "reason", why)
		if s.r.mesh != nil {
			// The mesh is called on shard goroutines (Mesh's threading);
			// a shard that stopped leaves it to this one.
			if s.Do(func() { s.meshDropRetained(rm, ids) }) != nil {
				s.meshDropRetained(rm, ids)
			}
		}
	}
}

// retainedDropped counts and logs (one line) the n retained events just
// dropped from rm, and asks the other nodes of a mesh to drop their
// copies of them.
func (s *Shard) retainedDropped(rm *Realm, n int, ids []uint64, msg string, args ...any) {
	if n == 0 {
		return
	}
	s.stats.RetainedRevoked.Add(uint64(n))
	s.r.log.Info(msg, append([]any{"realm", rm.name, "count", n}, args...)...)
	if s.r.mesh != nil {
		// On s's goroutine (Mesh's threading; revokeRetained runs off
		// it), or on this one once s has stopped, as reauthRetained.
		if s.Do(func() { s.meshDropRetained(rm, ids) }) != nil {
			s.meshDropRetained(rm, ids)
		}
	}
}

// stillValid returns why a session may no longer stay, or "".
func (ss *Session) stillValid(r *Router) string {
	if why := identityValid(r, ss.realm, ss.authMethod, ss.authProvider, ss.authID, ss.authRole, ss.staticCred, ss.realmAuth); why != "" {
		return why
	}
	return r.withdrawn(ss.cred)
}

// identityValid returns why an identity may not be (or stay) in realm rm
// under the current configuration, or "". It is checked after every reload
// for established sessions and at WELCOME for logins that began before
// one.
// cred is the mark of the static credential it authenticated with
// (credMark), or "". realmAuth: it authenticated with one of the realm's
// Authenticators (HELLO), whatever its provider (a static user, an access
// token as a ticket), and the realm must still offer that method; an
// in-process session (JoinInternal: the gateway's, whose methods are the
// gateway's own) is not held to the realm's methods.
func identityValid(r *Router, rm *Realm, method, provider, authid, role, cred string, realmAuth bool) string {
	if r.Realm(rm.name) != rm {
		return "realm " + rm.name + " was removed from the configuration"
	}
	cfg := rm.conf()
	const notOffered = " is no longer offered on this realm"
	offered := !realmAuth || method == "anonymous" || methodOffered(r, cfg, method)
	switch {
	case method == "anonymous":
		if !cfg.Anonymous {
			return "anonymous sessions are no longer allowed on this realm"
		}
		if role != cfg.AnonymousRole {
			return "anonymous sessions now have role " + cfg.AnonymousRole + ", not " + role
		}
	case provider == "static" && cred != "":
		// A user of the realm's store: this package's authenticators
		// mark the credential it logged in with. Another Authenticator's
		// identity reads "static" too when it names no provider
		// (welcome), and is not looked up among the users: taken for
		// one, it was ended at every reload.
		u := cfg.Users.Lookup(authid)
		if u == nil {
			return "principal " + authid + " was removed from the configuration"
		}
		if !u.HasRole(role) {
			return "principal " + authid + " no longer has role " + role
		}
		if !offered {
			return "authentication method " + method + notOffered
		}
		if !credHeld(cfg.Users, method, u, cred) {
			return "the " + method + " credential principal " + authid + " authenticated with was changed or removed"
		}
	}
	if !offered {
		return "authentication method " + method + notOffered
	}
	return ""
}

// methodOffered reports whether the realm authenticates with method. An
// Authenticator whose Method panics offers none (authMethod).
func methodOffered(r *Router, cfg *RealmConfig, method string) bool {
	for _, a := range cfg.Authenticators {
		if m, ok := r.authMethod(a, cfg.Name); ok && m == method {
			return true
		}
	}
	return false
}
