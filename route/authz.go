package route

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/edgewamp/edgewamp/proto"
)

// Disclosure actions: whether the router reveals a caller's (publisher's)
// identity to callees (subscribers) even when the caller did not ask to be
// disclosed. Granted per role and URI like the other actions; without an
// Authorizer nothing is disclosed unasked.
const (
	ActionDiscloseCaller Action = iota + 4
	ActionDisclosePublisher

	numActions = iota + 4
)

// Permission grants actions on URIs that match Pattern under Match.
type Permission struct {
	URI               string
	Match             proto.Match
	Call              bool
	Register          bool
	Publish           bool
	Subscribe         bool
	DiscloseCaller    bool
	DisclosePublisher bool
}

func (p *Permission) allows(a Action) bool {
	switch a {
	case ActionCall:
		return p.Call
	case ActionRegister:
		return p.Register
	case ActionPublish:
		return p.Publish
	case ActionSubscribe:
		return p.Subscribe
	case ActionDiscloseCaller:
		return p.DiscloseCaller
	case ActionDisclosePublisher:
		return p.DisclosePublisher
	}
	return false
}

// Role is a named set of permissions.
type Role struct {
	Name        string
	Permissions []Permission
}

// RBAC is role-based authorization: for a session's role and a URI, the
// most specific matching permission decides: an exact match; else the
// matching prefix or wildcard pattern with the longest pattern (so
// "com.app..reading" beats a catch-all prefix "", and "com.app.admin."
// beats "com.app."), a prefix winning a tie. A role with no
// matching permission, or an unknown role, is denied everything: with
// security on, what is not granted is denied. RBAC is immutable and safe
// for concurrent use.
type RBAC struct {
	roles map[string]*table[*Permission]
	// fps fingerprints each role's permissions (roleFingerprint), so
	// that a reload can tell cheaply whose grants stayed as they were.
	fps map[string][32]byte
}

// NewRBAC validates roles and builds the authorizer.
func NewRBAC(roles []Role) (*RBAC, error) {
	z := &RBAC{roles: map[string]*table[*Permission]{}, fps: map[string][32]byte{}}
	var errs []error
	for _, r := range roles {
		if r.Name == "" {
			errs = append(errs, errors.New("a role needs a name"))
			continue
		}
		if _, dup := z.roles[r.Name]; dup {
			errs = append(errs, fmt.Errorf("role %q is defined twice", r.Name))
			continue
		}
		t := newTable[*Permission]()
		for i := range r.Permissions {
			p := &r.Permissions[i]
			if p.URI != "" || p.Match != proto.MatchPrefix { // "" with prefix matches everything
				if !proto.ValidPattern([]byte(p.URI), proto.URILoose, p.Match) {
					errs = append(errs, fmt.Errorf("role %q: permission URI %q is not valid for match %s", r.Name, p.URI, p.Match))
					continue
				}
			}
			if _, dup := t.get(p.Match, p.URI); dup {
				errs = append(errs, fmt.Errorf("role %q: two permissions for %s URI %q", r.Name, p.Match, p.URI))
				continue
			}
			t.put(p.Match, p.URI, p)
		}
		z.roles[r.Name] = t
		z.fps[r.Name] = roleFingerprint(r.Permissions)
	}
	return z, errors.Join(errs...)
}

// roleFingerprint is a hash of a role's permissions, in no particular
// order: two roles with the same fingerprint grant the same.
func roleFingerprint(ps []Permission) [32]byte {
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		lines = append(lines, fmt.Sprintf("%d %q %t %t %t %t %t %t", p.Match, p.URI, p.Call, p.Register, p.Publish, p.Subscribe, p.DiscloseCaller, p.DisclosePublisher))
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

// fingerprint returns role's fingerprint; an unknown role's is zero (it
// is denied everything).
func (z *RBAC) fingerprint(role string) [32]byte { return z.fps[role] }

// Authorize implements Authorizer.
func (z *RBAC) Authorize(role string, a Action, uri string) bool {
	t := z.roles[role]
	if t == nil {
		return false
	}
	var buf [16]*Permission
	var best *Permission
	for _, p := range t.matchAll([]byte(uri), buf[:0]) {
		if best == nil || moreSpecific(p, best) {
			best = p
		}
	}
	return best != nil && best.allows(a)
}

// AuthorizePattern implements PatternAuthorizer: a prefix or wildcard
// REGISTER or SUBSCRIBE of pattern is decided by the permissions that
// cover the whole pattern, the most specific of them as for a URI: a
// prefix permission covers a prefix pattern that starts with it, and a
// wildcard pattern whose fixed start (up to its first wildcard
// component) starts with it; a wildcard permission covers a wildcard
// pattern of as many components that has each of its non-empty
// components in the same place. An exact permission covers no pattern
// (granted register on "a.b", a role may not register the prefix "a.b",
// which takes the calls to "a.b.c", "a.bc" ...), nor a wildcard one a
// prefix pattern. A more specific permission the pattern only overlaps
// (a denied "com.secret." under a registered "com.") does not decide:
// it is applied to each URI an invocation or event is for. An exact
// match is a concrete URI: Authorize.
func (z *RBAC) AuthorizePattern(role string, a Action, m proto.Match, pattern string) bool {
	if m == proto.MatchExact {
		return z.Authorize(role, a, pattern)
	}
	t := z.roles[role]
	if t == nil {
		return false
	}
	var buf [16]*Permission
	var best *Permission
	for _, p := range t.coverAll(m, []byte(pattern), buf[:0]) {
		if best == nil || moreSpecific(p, best) {
			best = p
		}
	}
	return best != nil && best.allows(a)
}

// moreSpecific orders permissions matching the same URI.
func moreSpecific(p, q *Permission) bool {
	if p.Match == proto.MatchExact || q.Match == proto.MatchExact {
		return p.Match == proto.MatchExact && q.Match != proto.MatchExact
	}
	if len(p.URI) != len(q.URI) {
		return len(p.URI) > len(q.URI)
	}
	return p.Match == proto.MatchPrefix && q.Match == proto.MatchWildcard
}

// HasRole reports whether role is defined.
func (z *RBAC) HasRole(role string) bool { return z.roles[role] != nil }

// grants reports whether an Authorizer explicitly grants a (disclosure)
// action; without one, nothing is granted. Owned by shard.
func (ss *Session) grants(a Action, uri []byte) bool {
	if ss.realm.conf().Authorizer == nil {
		return false
	}
	return ss.authorize(a, uri)
}
