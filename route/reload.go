package route

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

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
// make (revokeUnauthorized). It returns an error, and changes nothing,
// when the new configuration is invalid.
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
	for _, rc := range realms {
		if rm := old[rc.Name]; rm != nil {
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
	// a session's authorization cache still held from before.
	r.onEveryShard((*Shard).reauth, (*Shard).reauthRetained)
	return nil
}

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

// reauth re-checks this shard's sessions after a reload.
func (s *Shard) reauth() {
	for ss := range s.sessions() {
		ss.authz = nil
		if ss.state != stEstablished {
			continue
		}
		if why := ss.stillValid(s.r); why != "" {
			s.r.log.Info("disconnecting a session after reload", "session", ss.id, "authid", ss.authID, "reason", why)
			s.revoke(ss, why)
			continue
		}
		s.revokeUnauthorized(ss)
		s.endUnauthorizedCalls(ss)
	}
}

// endUnauthorizedCalls ends, after a reload, the calls in flight that the
// caller's role may no longer make: the caller gets ERROR
// wamp.error.not_authorized and the callee INTERRUPT (killnowait), as for
// a router-side timeout. Before, a progressive call went on exchanging
// chunks and results after both grants were gone. One log line per
// session. (A callee whose registration a reload revoked finishes the
// invocations it has if their callers may still call: they were allowed
// when made, and no new one reaches it.)
func (s *Shard) endUnauthorizedCalls(ss *Session) {
	var n int
	var first string
	for req, oc := range ss.calls {
		if ss.state != stEstablished {
			return
		}
		proc := oc.procedure()
		if ss.authorize(ActionCall, []byte(proc)) {
			continue
		}
		if n == 0 {
			first = proc
		}
		n++
		ss.endCall(req, oc)
		s.replyError(ss, proto.CodeCall, req, proto.URINotAuthorized, "the call was ended: the role may no longer call "+strconv.Quote(proc)+" (configuration reloaded)")
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URINotAuthorized)
	}
	if n > 0 {
		s.r.log.Info("ending calls after reload: the role may no longer make them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", n, "procedure", first)
	}
}

// revokeUnauthorized revokes what a session still holds that its role may
// no longer make after a reload:
//
//   - Registrations would go on holding their procedures (another
//     callee's REGISTER refused as procedure_already_exists) for calls that
//     all fail.
//   - Subscriptions no longer deliver (the publish-time check withholds
//     their events) but would stay in the tables: listed and counted by the
//     meta API, holding the mesh's interest in their topic, and a place
//     within the session's bound.
//
// Each goes as an UNREGISTER or UNSUBSCRIBE would, with its meta events;
// a client that announced registration_revocation or
// subscription_revocation is told, others are not (as the calls and
// events they can no longer have were not), and the session stays. One
// log line per session and kind, not per URI: a session may hold 65,536
// of each.
func (s *Shard) revokeUnauthorized(ss *Session) {
	var n int
	var first string
	for _, ref := range ss.regs {
		reg := ref.reg
		if ss.state != stEstablished {
			return // a revocation it could not take ended it (and its registrations)
		}
		if !ss.authorize(ActionRegister, []byte(reg.uri)) {
			if n == 0 {
				first = reg.uri
			}
			n++
			s.revokeRegistration(ss, reg, proto.URINotAuthorized)
		}
	}
	if n > 0 {
		s.r.log.Info("revoking registrations after reload: the role may no longer register them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", n, "procedure", first)
	}
	n = 0
	for _, ref := range ss.subs {
		sub := ref.sub
		if ss.state != stEstablished {
			return
		}
		if !ss.authorize(ActionSubscribe, []byte(sub.uri)) {
			if n == 0 {
				first = sub.uri
			}
			n++
			s.revokeSubscription(ss, sub, proto.URINotAuthorized)
		}
	}
	if n > 0 {
		s.r.log.Info("revoking subscriptions after reload: the role may no longer subscribe to them", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "count", n, "topic", first)
	}
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
				if w == "" && by.cred != nil && by.cred.Check != nil {
					w = by.cred.Check()
				}
				valid[by] = w
			}
			if w != "" {
				return w
			}
			if az := cfg.Authorizer; az != nil && !az.Authorize(by.authRole, ActionPublish, topic) {
				return "role " + by.authRole + " may no longer publish to the topic"
			}
			return ""
		})
		s.retainedDropped(rm, n, ids, "dropped retained events after reload: their publishers may no longer publish them", "topic", topic, "reason", why)
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
		s.meshDropRetained(rm, ids)
	}
}

// stillValid returns why a session may no longer stay, or "".
func (ss *Session) stillValid(r *Router) string {
	if why := identityValid(r, ss.realm, ss.authMethod, ss.authProvider, ss.authID, ss.authRole, ss.staticCred, ss.realmAuth); why != "" {
		return why
	}
	if ss.cred != nil && ss.cred.Check != nil {
		return ss.cred.Check()
	}
	return ""
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
	offered := !realmAuth || method == "anonymous" || methodOffered(cfg, method)
	switch {
	case method == "anonymous":
		if !cfg.Anonymous {
			return "anonymous sessions are no longer allowed on this realm"
		}
		if role != cfg.AnonymousRole {
			return "anonymous sessions now have role " + cfg.AnonymousRole + ", not " + role
		}
	case provider == "static":
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
		if cred != "" && !credHeld(method, u, cred) {
			return "the " + method + " credential principal " + authid + " authenticated with was changed or removed"
		}
	}
	if !offered {
		return "authentication method " + method + notOffered
	}
	return ""
}

// methodOffered reports whether the realm authenticates with method.
func methodOffered(cfg *RealmConfig, method string) bool {
	for _, a := range cfg.Authenticators {
		if a.Method() == method {
			return true
		}
	}
	return false
}
