package main

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Security configuration: users, roles and permissions per realm. Built
// into the router's authenticators and authorizer. Secrets (passwords,
// CRA secrets) never appear in errors or logs.

var knownMethods = map[string]bool{"anonymous": true, "ticket": true, "wampcra": true, "cryptosign": true}

var knownActions = map[string]bool{"call": true, "register": true, "publish": true, "subscribe": true}

// validateSecurity checks realm i's users, roles and methods.
func (c *config) validateSecurity(errs *[]error, i int) {
	r := &c.Realms[i]
	if r.AuthMethods != nil && len(r.AuthMethods) == 0 || r.AuthMethods == nil && c.nullAt("realms", i, "authmethods") {
		// `authmethods: []` was taken as no list (build's default: the
		// users' methods, anonymous without users), which opened the
		// realm it was written to close; so was the key with no value
		// (`authmethods:` with every method commented out, or ~).
		c.errAt(errs, fmt.Sprintf("realms[%d].authmethods is empty: a realm takes at least one method (anonymous, ticket, wampcra or cryptosign); leave the key out for the methods of its users (anonymous when it has none), or remove the realm to let no one in", i), "realms", i, "authmethods")
	}
	for j, m := range r.AuthMethods {
		if !knownMethods[m] {
			c.errAt(errs, fmt.Sprintf("realms[%d].authmethods[%d]: unknown authmethod %q (want anonymous, ticket, wampcra or cryptosign)", i, j, m), "realms", i, "authmethods", j)
		}
		if m == "anonymous" && r.Anonymous != nil && !*r.Anonymous {
			c.errAt(errs, fmt.Sprintf("realms[%d].authmethods[%d]: anonymous is listed, but realms[%d].anonymous is false", i, j, i), "realms", i, "authmethods", j)
		}
	}
	if len(r.Roles) > 0 && !r.Security {
		// The roles would be ignored: without security every session may
		// do anything, whatever its role's permissions say.
		c.errAt(errs, fmt.Sprintf("realm %q defines roles but security is off: set security: true (or remove the roles)", r.Name), "realms", i, "roles")
	}
	roles := map[string]bool{}
	for j, ro := range r.Roles {
		if ro.Name == "" {
			c.errAt(errs, fmt.Sprintf("realms[%d].roles[%d] needs a name", i, j), "realms", i, "roles", j)
		} else if !wampText(ro.Name) {
			c.errAt(errs, fmt.Sprintf("realms[%d].roles[%d]: role name %q %s", i, j, ro.Name, notWAMPText), "realms", i, "roles", j, "name")
		}
		if roles[ro.Name] {
			c.errAt(errs, fmt.Sprintf("role %q is defined twice in realm %q", ro.Name, r.Name), "realms", i, "roles", j, "name")
		}
		roles[ro.Name] = true
		for k, p := range ro.Permissions {
			at := []any{"realms", i, "roles", j, "permissions", k}
			m, ok := parseMatch(p.Match)
			if !ok {
				c.errAt(errs, fmt.Sprintf("role %q: match must be exact, prefix or wildcard, not %q", ro.Name, p.Match), append(at, "match")...)
			} else if !(p.URI == "" && m == proto.MatchPrefix) && !proto.ValidPattern([]byte(p.URI), proto.URILoose, m) {
				c.errAt(errs, fmt.Sprintf("role %q: %q is not a valid URI for match %s", ro.Name, p.URI, m), append(at, "uri")...)
			} else if strings.Contains(p.URI, "*") && !(p.Match == "exact" && r.URICheck != "strict") {
				// A "*" with match: exact written out, in a loose realm,
				// is the literal URI the operator named (clients of a
				// loose realm may use one; Crossbar, too, reads a starred
				// URI as a pattern only when no match is given): taken.
				uri, match := starredForm(p.URI)
				c.errAt(errs, fmt.Sprintf("role %q: permission URI %q has a \"*\", which is not a wildcard here (Crossbar's starred URIs are not read): the permission would apply to that literal URI only, to nothing a client calls or publishes; write {uri: %s, match: %s}", ro.Name, p.URI, strconv.Quote(uri), match), append(at, "uri")...)
			}
			for _, a := range p.Allow {
				if !knownActions[a] {
					c.errAt(errs, fmt.Sprintf("role %q: unknown action %q (want call, register, publish or subscribe)", ro.Name, a), append(at, "allow")...)
				}
			}
			for _, d := range p.Disclose {
				if d != "caller" && d != "publisher" {
					c.errAt(errs, fmt.Sprintf("role %q: disclose takes caller and publisher, not %q", ro.Name, d), append(at, "disclose")...)
				}
			}
		}
	}
	ids := map[string]bool{}
	for j, u := range r.Users {
		at := []any{"realms", i, "users", j}
		if u.AuthID == "" {
			c.errAt(errs, fmt.Sprintf("realms[%d].users[%d] needs an authid", i, j), at...)
			continue
		}
		if ids[u.AuthID] {
			c.errAt(errs, fmt.Sprintf("user %q is defined twice in realm %q", u.AuthID, r.Name), append(at, "authid")...)
		}
		ids[u.AuthID] = true
		if !wampText(u.AuthID) {
			c.errAt(errs, fmt.Sprintf("realms[%d].users[%d]: authid %q %s", i, j, u.AuthID, notWAMPText), append(at, "authid")...)
		}
		urs := u.roleList()
		if len(urs) == 0 {
			c.errAt(errs, fmt.Sprintf("user %q needs a role (role: or roles:)", u.AuthID), at...)
		}
		// HELLO may name at most route.MaxAuthIDLen bytes of authid and
		// authrole: a longer one could never log in.
		if len(u.AuthID) > route.MaxAuthIDLen {
			c.errAt(errs, fmt.Sprintf("realms[%d].users[%d]: authid is longer than %d bytes, more than HELLO may carry", i, j, route.MaxAuthIDLen), append(at, "authid")...)
		}
		for _, ro := range urs {
			if len(ro) > route.MaxAuthIDLen {
				c.errAt(errs, fmt.Sprintf("user %q: a role name is longer than %d bytes, more than HELLO may carry", u.AuthID, route.MaxAuthIDLen), at...)
			}
			if !wampText(ro) {
				c.errAt(errs, fmt.Sprintf("user %q: role %q %s", u.AuthID, ro, notWAMPText), at...)
			}
		}
		if r.Security {
			for _, ro := range urs {
				if !roles[ro] {
					c.errAt(errs, fmt.Sprintf("user %q has role %q, which realm %q does not define", u.AuthID, ro, r.Name), at...)
				}
			}
		}
		if u.Password != "" && u.PasswordEnv != "" || u.Secret != "" && u.SecretEnv != "" {
			c.errAt(errs, fmt.Sprintf("user %q: give a secret either inline or from the environment, not both", u.AuthID), at...)
		}
		if pw := u.password(); pw != "" {
			if p, err := route.ParsePassword(pw); err != nil {
				c.errAt(errs, fmt.Sprintf("user %q: password: %v", u.AuthID, err), append(at, "password")...)
			} else if p.Iterations > maxIterations {
				c.errAt(errs, fmt.Sprintf("user %q: password: %d PBKDF2 iterations; at most %d (the default is %d; make a hash with `edgewamp passwd`)", u.AuthID, p.Iterations, maxIterations, route.DefaultIterations), append(at, "password")...)
			}
		}
		if u.PasswordEnv != "" && os.Getenv(u.PasswordEnv) == "" {
			c.errAt(errs, fmt.Sprintf("user %q: environment variable %s is empty", u.AuthID, u.PasswordEnv), append(at, "password_env")...)
		}
		if u.SecretEnv != "" && os.Getenv(u.SecretEnv) == "" {
			c.errAt(errs, fmt.Sprintf("user %q: environment variable %s is empty", u.AuthID, u.SecretEnv), append(at, "secret_env")...)
		}
		for k, key := range u.CryptosignKeys {
			if _, err := route.ParsePublicKey(key); err != nil {
				c.errAt(errs, fmt.Sprintf("user %q: cryptosign_keys[%d]: %v", u.AuthID, k, err), append(at, "cryptosign_keys", k)...)
			}
		}
		// An empty password_env or secret_env is reported above, once.
		if u.password() == "" && u.secret() == "" && len(u.CryptosignKeys) == 0 && u.PasswordEnv == "" && u.SecretEnv == "" {
			c.errAt(errs, fmt.Sprintf("user %q has no credential (password, secret or cryptosign_keys)", u.AuthID), at...)
		}
	}
	if !wampText(r.AnonymousRole) {
		c.errAt(errs, fmt.Sprintf("realms[%d].anonymous_role %q %s", i, r.AnonymousRole, notWAMPText), "realms", i, "anonymous_role")
	}
	if r.Security && r.takesAnonymous() && !roles[r.anonymousRole()] {
		c.errAt(errs, fmt.Sprintf("realm %q allows anonymous sessions with role %q, which it does not define (security is on: they could do nothing)", r.Name, r.anonymousRole()), "realms", i)
	}
}

// starredForm returns the URI and match policy Crossbar reads a starred
// permission URI as (with no match given): one "*" at the end the prefix
// before it ("wamp.*" the prefix "wamp.", "*" the prefix ""), any other
// "*" an empty, wildcard component ("com.*.get" the wildcard "com..get").
// edgewamp takes "*" for an ordinary character of a URI, so that such a
// permission, brought over from Crossbar, would apply to that literal
// URI alone: a deny of the meta API under a catch-all grant
// ({uri: "wamp.*", allow: []}) left it open. validateSecurity refuses
// it and suggests this form.
func starredForm(uri string) (string, string) {
	if strings.Count(uri, "*") == 1 && strings.HasSuffix(uri, "*") {
		return strings.TrimSuffix(uri, "*"), "prefix"
	}
	return strings.ReplaceAll(uri, "*", ""), "wildcard"
}

// wampText reports whether s, an authid or role, is a string the router
// can give every peer: UTF-8 and not starting with NUL (WAMP's JSON reads
// a string starting with NUL as binary, so proto cannot write it to a
// JSON peer). A principal named otherwise could not log in over WAMP
// (proto refuses a HELLO's text option starting with NUL), but the OAuth2
// server would issue it tokens, and with them every disclosure, meta
// event and wamp.session.get naming it would fail for JSON peers.
func wampText(s string) bool {
	return utf8.ValidString(s) && (s == "" || s[0] != 0)
}

const notWAMPText = "starts with NUL or is not UTF-8: WAMP's JSON reads a string starting with NUL as binary, so the router could not give it to JSON peers"

func parseMatch(s string) (proto.Match, bool) {
	switch s {
	case "", "exact":
		return proto.MatchExact, true
	case "prefix":
		return proto.MatchPrefix, true
	case "wildcard":
		return proto.MatchWildcard, true
	}
	return 0, false
}

func (u *userConfig) roleList() []string {
	var out []string
	if u.Role != "" {
		out = append(out, u.Role)
	}
	return append(out, u.Roles...)
}

func (u *userConfig) password() string {
	if u.PasswordEnv != "" {
		return os.Getenv(u.PasswordEnv)
	}
	return u.Password
}

func (u *userConfig) secret() string {
	if u.SecretEnv != "" {
		return os.Getenv(u.SecretEnv)
	}
	return u.Secret
}

func (r *realmConfig) anonymous() bool {
	if r.Anonymous != nil {
		return *r.Anonymous
	}
	return len(r.Users) == 0 && r.OAuth == nil // default: anonymous unless users or OAuth2 are configured
}

// takesAnonymous reports whether the realm lets anonymous clients join:
// with authmethods, when they list anonymous (build enables only those
// listed, whatever anonymous says); without, anonymous().
func (r *realmConfig) takesAnonymous() bool {
	if len(r.AuthMethods) > 0 {
		return slices.Contains(r.AuthMethods, "anonymous")
	}
	return r.anonymous()
}

// anonymousMethodWarnings says, one line per realm, where `anonymous:
// true` stands beside an authmethods list that leaves anonymous out: the
// list restricts the realm's methods (build, takesAnonymous), so the realm
// refuses the anonymous clients the file says it takes. Before, nothing
// said so. A warning, not a refusal as its mirror (anonymous listed with
// `anonymous: false`, which would open a realm the file closes) is: this
// one fails closed, and a file that ran before still starts. nil when
// there is none. check-config and run say them.
func (c *config) anonymousMethodWarnings() []string {
	var out []string
	for i := range c.Realms {
		r := &c.Realms[i]
		if len(r.AuthMethods) > 0 && r.Anonymous != nil && *r.Anonymous && !slices.Contains(r.AuthMethods, "anonymous") {
			out = append(out, fmt.Sprintf("realms[%d].anonymous is true, but realms[%d].authmethods does not list anonymous (realm %q): the list restricts the realm's methods, so anonymous clients are refused (no_matching_auth_method); add anonymous to authmethods, or remove anonymous: true", i, i, r.Name))
		}
	}
	return out
}

func (r *realmConfig) anonymousRole() string {
	if r.AnonymousRole != "" {
		return r.AnonymousRole
	}
	return "anonymous"
}

// build makes the router's realm configuration. The config is validated.
// With o, a realm with an oauth: block takes access tokens as tickets.
func (r *realmConfig) build(o *oauthServer) (route.RealmConfig, error) {
	rc := route.RealmConfig{Name: r.Name, AnonymousRole: r.anonymousRole()}
	if r.URICheck == "strict" {
		rc.URICheck = proto.URIStrict
	}
	var users []*route.User
	for _, u := range r.Users {
		ru := &route.User{AuthID: u.AuthID, Roles: u.roleList(), Secret: u.secret()}
		if pw := u.password(); pw != "" {
			p, err := route.ParsePassword(pw)
			if err != nil {
				return rc, fmt.Errorf("user %q: %w", u.AuthID, err)
			}
			ru.Password = p
		}
		for _, k := range u.CryptosignKeys {
			pk, err := route.ParsePublicKey(k)
			if err != nil {
				return rc, fmt.Errorf("user %q: %w", u.AuthID, err)
			}
			ru.Keys = append(ru.Keys, ed25519.PublicKey(pk))
		}
		users = append(users, ru)
	}
	store, err := route.NewUsers(users)
	if err != nil {
		return rc, err
	}
	rc.Users = store
	methods := r.AuthMethods
	if len(methods) == 0 { // default: what the users can do, plus anonymous if allowed
		if r.anonymous() {
			methods = append(methods, "anonymous")
		}
		var pw, sec, keys bool
		for _, u := range users {
			pw = pw || u.Password != nil
			sec = sec || u.Secret != ""
			keys = keys || len(u.Keys) > 0
		}
		if pw || r.OAuth != nil {
			methods = append(methods, "ticket")
		}
		if pw || sec {
			methods = append(methods, "wampcra")
		}
		if keys {
			methods = append(methods, "cryptosign")
		}
	}
	for _, m := range methods {
		switch m {
		case "anonymous":
			rc.Anonymous = true
		case "ticket":
			if o != nil && r.OAuth != nil {
				rc.Authenticators = append(rc.Authenticators, &route.TicketAuth{Users: store, Tokens: tokenVerifier{o}})
			} else {
				rc.Authenticators = append(rc.Authenticators, &route.TicketAuth{Users: store})
			}
		case "wampcra":
			rc.Authenticators = append(rc.Authenticators, &route.CRAAuth{Users: store})
		case "cryptosign":
			rc.Authenticators = append(rc.Authenticators, &route.CryptosignAuth{Users: store})
		}
	}
	if !rc.Anonymous && len(rc.Authenticators) == 0 {
		return rc, fmt.Errorf("realm %q allows no authmethod: enable anonymous or configure users", r.Name)
	}
	if r.Security {
		var roles []route.Role
		for _, ro := range r.Roles {
			role := route.Role{Name: ro.Name}
			for _, p := range ro.Permissions {
				m, _ := parseMatch(p.Match)
				perm := route.Permission{URI: p.URI, Match: m}
				for _, a := range p.Allow {
					switch a {
					case "call":
						perm.Call = true
					case "register":
						perm.Register = true
					case "publish":
						perm.Publish = true
					case "subscribe":
						perm.Subscribe = true
					}
				}
				for _, d := range p.Disclose {
					perm.DiscloseCaller = perm.DiscloseCaller || d == "caller"
					perm.DisclosePublisher = perm.DisclosePublisher || d == "publisher"
				}
				role.Permissions = append(role.Permissions, perm)
			}
			roles = append(roles, role)
		}
		z, err := route.NewRBAC(roles)
		if err != nil {
			return rc, err
		}
		rc.Authorizer = z
	}
	return rc, nil
}

// realmConfigs builds every realm (without OAuth2: validation).
func (c *config) realmConfigs() ([]route.RealmConfig, error) { return c.realmConfigsWith(nil) }

// realmConfigsWith builds every realm, taking access tokens of o as
// tickets where a realm enables OAuth2.
func (c *config) realmConfigsWith(o *oauthServer) ([]route.RealmConfig, error) {
	var out []route.RealmConfig
	for i := range c.Realms {
		rc, err := c.Realms[i].build(o)
		if err != nil {
			return nil, fmt.Errorf("realm %q: %w", c.Realms[i].Name, err)
		}
		out = append(out, rc)
	}
	return out, nil
}
