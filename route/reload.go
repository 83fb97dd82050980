package route

import (
	"errors"
	"fmt"

	"github.com/edgewamp/edgewamp/proto"
)

// Reload installs a new set of realm configurations (SIGHUP). New sessions
// see it at once. Existing sessions are re-checked on their shards: their
// authorization caches are dropped, and a session is told GOODBYE
// (wamp.close.killed) when its realm is gone, when it joined anonymously
// and the realm no longer allows that or gives anonymous sessions another
// role, or when its static user was removed, lost its role, or no longer
// holds the credential the session logged in with (a password, secret or
// key changed or removed, the method no longer offered). It returns an
// error, and changes nothing, when the new configuration is invalid.
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
	for _, sh := range r.shards {
		sh.post(task{kind: tReauth})
	}
	return nil
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
		// Registrations the role may no longer make would go on holding
		// their procedures (another callee's REGISTER refused as
		// procedure_already_exists) for calls that all fail. They are
		// revoked; a callee that did not announce registration_revocation
		// is not told (as the calls it can no longer answer were not),
		// and keeps its session.
		for _, reg := range ss.regs {
			if !ss.authorize(ActionRegister, []byte(reg.uri)) {
				s.r.log.Info("revoking a registration after reload: the role may no longer register it", "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "procedure", reg.uri)
				s.revokeRegistration(ss, reg, proto.URINotAuthorized)
			}
		}
	}
}

// stillValid returns why a session may no longer stay, or "".
func (ss *Session) stillValid(r *Router) string {
	if why := identityValid(r, ss.realm, ss.authMethod, ss.authProvider, ss.authID, ss.authRole, ss.staticCred); why != "" {
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
// (credMark), or "".
func identityValid(r *Router, rm *Realm, method, provider, authid, role, cred string) string {
	if r.Realm(rm.name) != rm {
		return "realm " + rm.name + " was removed from the configuration"
	}
	cfg := rm.conf()
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
		if cred != "" {
			if !methodOffered(cfg, method) {
				return "authentication method " + method + " is no longer offered on this realm"
			}
			if !credHeld(method, u, cred) {
				return "the " + method + " credential principal " + authid + " authenticated with was changed or removed"
			}
		}
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
