package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// API keys and signing keys, and their replacement by a configuration
// reload.
//
// Before, the keys were read once, at New: an operator who found a key
// leaked had to restart the process, dropping every client, to take it
// away. Now a reload (SetAccess) installs the file's keys: a key may be
// added, removed, given another secret (an API key's key, a signing key's
// secret) or another principal (realm, authid, role).
//
// The keys are an immutable table (keyTable), published with the realms'
// bridge access in one snapshot (access) behind an atomic pointer: a
// request loads the snapshot once and is judged by it from end to end
// (the realm's bridge access, the key's lookup, its secret and its
// principal all come from one configuration, never a mix), and takes no
// lock for it. A reload builds the new table off the request path, then
// swaps the pointer before it returns (and so before cmd logs the
// reload): a request that loads the snapshot afterwards sees only the new
// keys. A request that loaded it before goes on as it began; if it opens
// an SSE stream, the stream's grant is registered before it is checked
// against the snapshot of then (grant.go), so a stream that slipped
// between the two is refused all the same.
//
// The SSE streams (event streams, streamed calls) opened with a key that
// the reload removed, or whose secret or principal it changed, end with a
// problem event (401) saying which, their calls canceled at the router
// (CANCEL killnowait): a stream is judged as a request made now with the
// same credential would be. Streams of keys the reload leaves alone go
// on. The principals' pooled WAMP sessions are keyed by the principal
// (pool.go), so a key given another principal acts as the new one at its
// next request; the idle sessions of principals no key stands for any
// more are closed at the reload (busy ones when they go idle), so that
// the router's session list does not show them for SessionIdle longer.
//
// A configuration reload installs the keys with the file's routes
// (Prepare and Apply, reload.go), a route's auth.keys checked against the
// new keys: keys and the routes naming them change together. SetAccess,
// which keeps the routes, keeps their auth.keys too: a name whose key it
// removed matches no key (a route left with no key it names refuses every
// key, it never falls back to any key), and it logs which. Refusing the
// keys instead would hold up the rotation of a leaked key, the very thing
// a reload of keys is for.

// keyed is an API key's or signing key's principal. Immutable, shared by
// the requests that authenticate with it.
type keyed struct {
	name                string   // the API key's name, or the signing key's id
	hash                [32]byte // API keys: SHA-256 of the key
	secret              []byte   // signing keys
	signing             bool
	realm, authid, role string
}

// identity is the principal the key stands for.
func (k *keyed) identity() identity {
	m := "apikey"
	if k.signing {
		m = "signed"
	}
	return identity{realm: k.realm, authid: k.authid, authrole: k.role, method: m}
}

// keyTable is a set of API keys and signing keys. Immutable once built.
type keyTable struct {
	apiKeys     map[[32]byte]*keyed // by SHA-256 of the key
	apiByName   map[string]*keyed   // by name
	signingKeys map[string]*keyed   // by key id
	principals  map[identity]bool   // what the keys stand for (keyCredential)
}

// access is what requests are judged by, swapped as one by a reload:
// the realms' bridge access, the keys, the routes, the mux that
// dispatches to them (its route handlers bound to this snapshot) and the
// OpenAPI document that describes them. Immutable once stored.
type access struct {
	realms  map[string]*realmEntry
	keys    *keyTable
	routes  *routeTable
	mux     *http.ServeMux
	openapi *apiDoc // shared with the snapshots before while the routes and the kinds of key stay
}

// realm returns a realm's entry, nil for a realm not configured.
func (ac *access) realm(name string) *realmEntry { return ac.realms[name] }

// compileKeys checks and indexes keys as Options.APIKeys and
// Options.SigningKeys; the errors name the fields.
func compileKeys(apiKeys []APIKey, signingKeys []SigningKey) (*keyTable, []error) {
	var errs []error
	t := &keyTable{
		apiKeys:     make(map[[32]byte]*keyed, len(apiKeys)),
		apiByName:   make(map[string]*keyed, len(apiKeys)),
		signingKeys: make(map[string]*keyed, len(signingKeys)),
		principals:  map[identity]bool{},
	}
	for i, k := range apiKeys {
		switch {
		case len(k.Key) < 16:
			errs = append(errs, fieldErr("an API key must be at least 16 characters", "api_keys", i, "key"))
		case k.Realm == "" || k.Role == "":
			errs = append(errs, fieldErr("an API key needs a realm and a role", "api_keys", i))
		}
		h := sha256.Sum256([]byte(k.Key))
		if t.apiKeys[h] != nil {
			errs = append(errs, fieldErr("the same API key is configured twice", "api_keys", i, "key"))
		}
		name := k.Name
		if name == "" {
			name = "key" + strconv.Itoa(i)
		}
		e := &keyed{name: name, hash: h, realm: k.Realm, authid: orStr(k.AuthID, name), role: k.Role}
		t.apiKeys[h] = e
		t.principals[e.identity()] = true
		if t.apiByName[name] == nil {
			t.apiByName[name] = e // names may repeat (as before): the first, for messages and logs
		}
	}
	for i, k := range signingKeys {
		switch {
		case k.Key == "":
			errs = append(errs, fieldErr("a signing key needs a key id", "signing_keys", i, "key"))
		case len(k.Secret) < 16:
			errs = append(errs, fieldErr("a signing key's secret must be at least 16 characters", "signing_keys", i, "secret"))
		case k.Realm == "" || k.Role == "":
			errs = append(errs, fieldErr("a signing key needs a realm and a role", "signing_keys", i))
		case t.signingKeys[k.Key] != nil:
			errs = append(errs, fieldErr("signing key "+k.Key+" is configured twice", "signing_keys", i, "key"))
		}
		e := &keyed{name: k.Key, secret: []byte(k.Secret), signing: true, realm: k.Realm, authid: orStr(k.AuthID, k.Key), role: k.Role}
		t.signingKeys[k.Key] = e
		t.principals[e.identity()] = true
	}
	return t, errs
}

// ValidateKeys checks API keys and signing keys as New and SetAccess do,
// without a server: cmd checks a reload's keys with it before the router
// takes the reload's realms. The error joins *FieldError values.
func ValidateKeys(apiKeys []APIKey, signingKeys []SigningKey) error {
	_, errs := compileKeys(apiKeys, signingKeys)
	return errors.Join(errs...)
}

// has reports whether the table holds a key (API key or signing key)
// named name: what a route's auth.keys names.
func (t *keyTable) has(name string) bool {
	return t.apiByName[name] != nil || t.signingKeys[name] != nil
}

// withdrawn returns why k, a key of an earlier table, no longer
// authenticates a request as it did (on a route restricted to allowed, or
// anywhere when allowed is empty), or "" while it does: removed, given
// another secret or principal, or renamed out of the route's list. The
// text goes to the client.
func (t *keyTable) withdrawn(k *keyed, allowed []string) string {
	if k.signing {
		cur := t.signingKeys[k.name]
		switch {
		case cur == nil:
			return "the signing key was removed"
		case !hmac.Equal(cur.secret, k.secret):
			return "the signing key was changed (its secret)"
		case cur.identity() != k.identity():
			return "the signing key was changed (it now acts as another principal)"
		}
		return ""
	}
	cur := t.apiKeys[k.hash]
	switch {
	case cur == nil && t.apiByName[k.name] != nil:
		return "the API key was changed (another key now has its name)"
	case cur == nil:
		return "the API key was removed"
	case cur.identity() != k.identity():
		return "the API key was changed (it now acts as another principal)"
	case len(allowed) > 0 && !contains(allowed, cur.name):
		return "the API key is no longer accepted here (it was renamed)"
	}
	return ""
}

// keyCredential is the route.Credential of the sessions of id, a
// principal of the API keys or signing keys (nil for others): a retained
// event one of them published goes on speaking for the principal after
// the session has gone, and is dropped (afterInstall:
// Router.RevokeRetained) once no key stands for the principal (its key
// removed, or given another principal), as a WAMP user's are when the
// user is removed. Before, such a retained event was given to every later
// subscriber for as long as the router ran: a leaked key taken away left
// what it had retained standing. It has no Check: the sessions are the
// pool's to close (retire), so that a request in flight ends as it began.
func keyCredential(id identity) *route.Credential {
	if id.method != "apikey" && id.method != "signed" {
		return nil
	}
	return &route.Credential{IDs: []string{keyCredentialID(id)}}
}

// keyCredentialID is keyCredential's id for principal id.
func keyCredentialID(id identity) string {
	return "edgewamp.gateway.key\x00" + id.method + "\x00" + id.realm + "\x00" + id.authid + "\x00" + id.authrole
}

// standsFor removes from ids the principals that a key of the table
// stands for.
func (t *keyTable) standsFor(ids map[identity]*idPool) {
	for _, k := range t.apiKeys {
		if len(ids) == 0 {
			return
		}
		delete(ids, k.identity())
	}
	for _, k := range t.signingKeys {
		if len(ids) == 0 {
			return
		}
		delete(ids, k.identity())
	}
}

// keyChanges is what a reload did to the keys, for its log line: how many
// were added, removed and changed (another key or secret, another
// principal), and the first maxLogged API key names and signing key ids of
// each. Never a key or a secret.
type keyChanges struct {
	added, removed, changed changeList
}

// changeList counts the keys of one kind of change and names the first
// maxLogged of them.
type changeList struct {
	n     int
	names []string
}

const maxLogged = 10

func (l *changeList) add(name string) {
	l.n++
	if len(l.names) < maxLogged {
		l.names = append(l.names, name)
	}
}

// String is the list for a log line: "3: api_key a, api_key b, signing_key
// c", with "and N more" past maxLogged.
func (l changeList) String() string {
	if l.n == 0 {
		return "0"
	}
	slices.Sort(l.names)
	s := strconv.Itoa(l.n) + ": " + strings.Join(l.names, ", ")
	if more := l.n - len(l.names); more > 0 {
		s += " and " + strconv.Itoa(more) + " more"
	}
	return s
}

func (c *keyChanges) none() bool {
	return c.added.n == 0 && c.removed.n == 0 && c.changed.n == 0
}

// diffKeys compares two tables: API keys by their key (names may repeat,
// so a name does not tell one key from another: comparing by name missed
// the removal or rotation of a key sharing its name with another), a key
// replaced under its name by a new one counting as changed; signing keys
// by id.
func diffKeys(old, cur *keyTable) keyChanges {
	var c keyChanges
	fresh := map[string]int{} // per name, the keys of cur that old does not hold
	for h, k := range cur.apiKeys {
		if old.apiKeys[h] == nil {
			fresh[k.name]++
		}
	}
	for h, o := range old.apiKeys {
		switch k := cur.apiKeys[h]; {
		case k == nil && fresh[o.name] > 0:
			fresh[o.name]-- // rotated: a new key took its name
			c.changed.add("api_key " + o.name)
		case k == nil:
			c.removed.add("api_key " + o.name)
		case k.name != o.name:
			c.removed.add("api_key " + o.name)
			c.added.add("api_key " + k.name)
		case k.identity() != o.identity():
			c.changed.add("api_key " + k.name)
		}
	}
	for name, n := range fresh {
		for range n {
			c.added.add("api_key " + name)
		}
	}
	for id, k := range cur.signingKeys {
		switch o := old.signingKeys[id]; {
		case o == nil:
			c.added.add("signing_key " + id)
		case !hmac.Equal(o.secret, k.secret) || o.identity() != k.identity():
			c.changed.add("signing_key " + id)
		}
	}
	for id := range old.signingKeys {
		if cur.signingKeys[id] == nil {
			c.removed.add("signing_key " + id)
		}
	}
	return c
}

// keyWithdrawn is the problem ending a stream whose key no longer
// authenticates it (why: keyTable.withdrawn's text).
func (g *Server) keyWithdrawn(why string) *problem {
	p := g.unauthorized(why, "")
	p.uri = proto.URIAuthenticationFailed
	return p
}

// SetAccess replaces the realms' bridge access (as SetRealms does) and the
// API and signing keys at once, keeping the routes (a configuration
// reload installs them too: Prepare and Apply). New requests are judged
// by the new realms and keys as soon as it returns, never by a mix of old
// and new; the SSE streams whose credential no longer authorizes them end
// (a key removed, given another secret or principal: keys.go; what
// SetRealms ends: grant.go). Keys with an error (as New would report
// them) are refused: nothing changes, and the error joins *FieldError
// values. Call it after the verifier and the router have the reload's
// configuration. Options.APIKeyHeader and SignatureMaxSkew change only
// with a restart.
func (g *Server) SetAccess(realms []RealmAccess, apiKeys []APIKey, signingKeys []SigningKey) error {
	kt, errs := compileKeys(apiKeys, signingKeys)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	g.setAccess(realms, kt)
	return nil
}

// setAccess installs realms and, when kt is set, the keys kt, keeping the
// routes (bound anew to the new snapshot), then does what a reload does
// after.
func (g *Server) setAccess(realms []RealmAccess, kt *keyTable) {
	g.accessMu.Lock()
	old := g.access.Load()
	if kt == nil {
		kt = old.keys
	}
	ac, errs := g.newAccess(realms, kt, old.routes, old)
	if len(errs) > 0 {
		// Not reached: the routes and the endpoints they were checked
		// against are those of the snapshot in use.
		g.accessMu.Unlock()
		g.log.Error("gateway: reload refused", "err", errors.Join(errs...))
		return
	}
	g.access.Store(ac)
	g.accessMu.Unlock()
	g.afterInstall(old, ac, true)
}

// afterInstall does what a reload does once its snapshot ac replaced old:
// logs what it changed in the keys (and, with warnRoutes, the routes
// naming keys no more), closes the idle sessions of the principals no
// key stands for any more, lets the callees and webhooks the router
// removed register and subscribe again, and checks every SSE stream.
func (g *Server) afterInstall(old, ac *access, warnRoutes bool) {
	if old.keys != ac.keys {
		if changes := diffKeys(old.keys, ac.keys); !changes.none() {
			kt := ac.keys
			g.log.Info("gateway: API and signing keys reloaded", "api_keys", len(kt.apiKeys), "signing_keys", len(kt.signingKeys),
				"added", changes.added.String(), "removed", changes.removed.String(), "changed", changes.changed.String())
			if warnRoutes {
				g.warnRouteKeys(ac)
			}
			g.pool.retire(func() *keyTable { return g.access.Load().keys })
			// The retained events of the principals no key stands for
			// any more (keyCredential), whether their sessions are still
			// open or left long ago.
			var gone []string
			for id := range old.keys.principals {
				if !ac.keys.principals[id] {
					gone = append(gone, keyCredentialID(id))
				}
			}
			if g.opts.Router != nil {
				g.opts.Router.RevokeRetained(gone)
			}
		}
	}
	g.reloadMu.Lock()
	if g.reloadCh != nil {
		close(g.reloadCh)
	}
	g.reloadCh = make(chan struct{})
	g.reloadMu.Unlock()
	g.recheckStreams()
}

// warnRouteKeys logs the routes of ac whose auth.keys name a key that its
// keys do not hold (SetAccess removed it): they no longer accept it.
func (g *Server) warnRouteKeys(ac *access) {
	for _, cr := range ac.routes.list {
		var gone []string
		for _, name := range cr.Auth.Keys {
			if !ac.keys.has(name) {
				gone = append(gone, name)
			}
		}
		if len(gone) == 0 {
			continue
		}
		msg := "gateway: route names keys that the reload removed; it accepts them no more (a reload of the routes with the keys changes their lists)"
		if len(gone) == len(cr.Auth.Keys) {
			msg = "gateway: every key a route names was removed by the reload: it refuses every key (a reload of the routes with the keys changes their lists)"
		}
		g.log.Warn(msg, "route", cr.label, "keys", strings.Join(gone, ", "))
	}
}
