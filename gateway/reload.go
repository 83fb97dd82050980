package gateway

import (
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/edgewamp/edgewamp/proto"
)

// A configuration reload's routes.
//
// Before, the routes were compiled once, at New, into the server's one
// mux: adding or changing a REST route, what operators change most often
// in the gateway, took a restart, which dropped every client. Now a
// reload installs the file's routes with its realms and keys.
//
// Everything a request is judged by is one immutable snapshot (access,
// keys.go) behind one atomic pointer: the realms' bridge access, the API
// and signing keys, the compiled routes (routeTable), the mux that
// dispatches to them and the OpenAPI document. Each snapshot has its own
// mux, in which the gateway's own endpoints and the mounts (built once)
// are registered again with the routes, whose handlers are bound to the
// snapshot: a request loads the pointer once, in dispatch, and the route
// it finds, the keys and realms it is authenticated by and the route's
// auth.keys all come from that one configuration. A separate atomic
// handler for the routes was the other way; it would have let a request
// dispatched by the old routes be authenticated by the new keys (a key
// renamed with the routes naming it refused on either side of the
// swap), or needed the snapshot passed down in the request's context (an
// allocation per request, the lane's bridge calls included). The cost is
// a new mux at every reload, keys-only ones (SetAccess) included, which
// bind the same compiled routes anew: it is built off the request path,
// before the swap (10,000 routes: TestRouteReloadTenThousandRoutes prints
// the time).
//
// The reload is two steps, so that cmd can refuse a bad file before the
// router takes its realms: Prepare compiles the routes, checks them
// (every check New makes: fields, names and method+path used twice,
// paths of the gateway's own, conflicts with its own endpoints, the
// mounts and one another) with the auth.keys checked against the NEW keys
// of the same Update (keys and the routes naming them change together),
// and builds the snapshot; nothing is installed, and an error joins
// *FieldError values naming each field. Apply swaps the snapshot in
// (before it returns: a request that starts afterwards sees only the new
// routes; one that started before finishes on the route it found), then
// does what any reload does after (grant.go, revoke.go, pool.go).
//
// The metrics of the routes follow the routes (metrics.go): a route keeps
// its series across the reloads that keep its label (name, or
// "METHOD path"), a new one gets its own, a removed one's are dropped.
//
// SSE streamed calls opened on a route are judged at the reload as a
// request made now with their credential would be by the route of the
// same label in the new table: a route the reload keeps, changed or not,
// keeps its streams while their credential passes its auth (type,
// auth.keys, roles, scopes, realm, and for requests without credentials
// the principal they act as); one it no longer passes ends, as the
// streams of a key the reload removed do: a problem event saying why and
// the call canceled at the router (CANCEL killnowait). A stream whose
// route the reload removed goes on until its call ends (it has a
// timeout), as a plain request already running does: removing a route
// stops new requests, it takes no credential away. Changing its
// procedure or realm does not move a running call either (a realm
// change ends it only as the realm's principal is another one). What
// ends a stream of any route, removed or not, still does: its key
// removed or changed, its token revoked or expired, the realm's
// anonymous access withdrawn.

// Update is what a configuration reload installs in a running gateway:
// the realms' bridge access, the API and signing keys, the routes, the
// HTTP callees and the webhooks (runners.go). The gateway's other options
// change only with a restart.
type Update struct {
	Realms      []RealmAccess
	APIKeys     []APIKey
	SigningKeys []SigningKey
	Routes      []Route
	Callees     []Callee
	Webhooks    []Webhook
}

// Prepared is an Update checked and built by Prepare, for Apply.
type Prepared struct {
	g        *Server
	ac       *access
	callees  []Callee  // checked, defaults applied, named
	webhooks []Webhook // the same
	named    []bool    // which webhooks the update named
	// retires are the runners (*calleeRunner, *webhookRunner) running
	// at Prepare that Apply would stop (removed or changed): a
	// revocation they hear meanwhile comes from this reload (revoke.go,
	// replacedByReload). Static after Prepare.
	retires  map[any]bool
	done     chan struct{} // closed by finish: Apply, Discard or a later Prepare
	doneOnce sync.Once
}

// finish closes p.done once and stops p being the pending reload.
func (p *Prepared) finish() {
	p.doneOnce.Do(func() { close(p.done) })
	p.g.pending.CompareAndSwap(p, nil)
}

// Discard drops p, a reload refused after Prepare (cmd: the router
// refused the realms): the runners a revocation found meanwhile stop
// waiting for its Apply. Safe to call more than once and after Apply.
func (p *Prepared) Discard() { p.finish() }

// Prepare checks u as New checks its options (its routes' auth.keys
// against u's keys, their patterns against the gateway's own endpoints,
// the mounts and one another) and builds what Apply installs, without
// installing anything: cmd calls it before the router takes the reload's
// realms, and refuses the reload on its error, which joins *FieldError
// values naming each field. Safe for concurrent use; it does not hold up
// requests.
func (g *Server) Prepare(u Update) (*Prepared, error) {
	kt, errs := compileKeys(u.APIKeys, u.SigningKeys)
	rt, rerrs := g.compileRoutes(u.Routes, kt, g.access.Load().routes)
	errs = append(errs, rerrs...)
	ac, aerrs := g.newAccess(u.Realms, kt, rt, nil)
	errs = append(errs, aerrs...)
	cs, cerrs := g.checkCallees(u.Callees)
	errs = append(errs, cerrs...)
	ws, named, werrs := checkWebhooks(u.Webhooks)
	errs = append(errs, werrs...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Prepared{g: g, ac: ac, callees: cs, webhooks: ws, named: named, retires: g.retiredBy(cs, ws), done: make(chan struct{})}
	if old := g.pending.Swap(p); old != nil {
		old.finish()
	}
	return p, nil
}

// retiredBy returns the running callees and webhooks that applying cs
// and ws would stop, as retireCallees and signalWebhooks choose them.
func (g *Server) retiredBy(cs []Callee, ws []Webhook) map[any]bool {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	out := map[any]bool{}
	rs := g.runners.Load()
	if rs == nil {
		return out
	}
	nc := make(map[string]*Callee, len(cs))
	for i := range cs {
		nc[cs[i].Name] = &cs[i]
	}
	for _, o := range rs.callees {
		if c := nc[o.name]; c == nil || !reflect.DeepEqual(o.cfg, *c) {
			out[o] = true
		}
	}
	nw := make(map[string]*Webhook, len(ws))
	for i := range ws {
		nw[ws[i].Name] = &ws[i]
	}
	for _, o := range rs.webhooks {
		if w := nw[o.name]; w == nil || !reflect.DeepEqual(o.cfg, *w) {
			out[o] = true
		}
	}
	return out
}

// Apply installs p, prepared by this server's Prepare: the realms' bridge
// access, the keys and the routes as one. New requests are routed and
// judged by them as soon as it returns, never by a mix of old and new;
// requests running go on as they began. The SSE streams whose credential
// no longer authorizes them end (keys.go, grant.go, and for the streamed
// calls of routes, reload.go). Then it makes the HTTP callees and webhooks
// p's (runners.go): when it returns, the registrations and subscriptions
// of those removed or changed are gone, and those added or changed are
// starting (after Start; before it, Start starts them). Call it after the
// verifier and the router have the reload's configuration. It blocks
// while the old runners stop (at most 10 s, for a router that does not
// answer), and is safe for concurrent use, Shutdown included (after
// which it starts no runner). It returns what it changed, for the
// reload's log line.
func (g *Server) Apply(p *Prepared) Changes {
	if p.g != g {
		panic("gateway: Apply of another server's Prepared")
	}
	g.accessMu.Lock()
	old := g.access.Load()
	g.access.Store(p.ac)
	changes := Changes{RouteChanges: diffRoutes(old.routes, p.ac.routes)}
	g.metrics.install(p.ac.routes.metrics(), changes.gone)
	g.accessMu.Unlock()
	g.afterInstall(old, p.ac, false)
	// After: the runners it starts wait for the next reload, not this one,
	// when the router refuses them.
	changes.Callees, changes.Webhooks = g.applyRunners(p.callees, p.webhooks, p.named)
	p.finish() // after: the runners it replaced were told to stop
	return changes
}

// Changes is what Apply changed: in the routes (RouteChanges), the HTTP
// callees and the webhooks.
type Changes struct {
	RouteChanges
	Callees, Webhooks RunnerChanges
}

// None reports whether the routes, callees and webhooks are the same as
// before.
func (c Changes) None() bool {
	return c.RouteChanges.None() && c.Callees.None() && c.Webhooks.None()
}

// LogAttrs are RouteChanges.LogAttrs and the same for the callees and
// webhooks: callees (how many run), callees_added, callees_removed,
// callees_changed, webhooks ..., and webhook_events_dropped when the
// removed webhooks' queues held events.
func (c Changes) LogAttrs() []any {
	attrs := append(c.RouteChanges.LogAttrs(), c.Callees.logAttrs("callees")...)
	attrs = append(attrs, c.Webhooks.logAttrs("webhooks")...)
	if c.Webhooks.dropped > 0 {
		attrs = append(attrs, "webhook_events_dropped", c.Webhooks.dropped)
	}
	return attrs
}

// newAccess builds a snapshot of realms, the keys kt and the routes of t,
// with its mux (t's route handlers bound to it) and its OpenAPI document
// (old's when it has the same routes and kinds of key; else built when
// first asked for). The errors are the mux's conflicts.
func (g *Server) newAccess(realms []RealmAccess, kt *keyTable, t *routeTable, old *access) (*access, []error) {
	rm := make(map[string]*realmEntry, len(realms))
	for i := range realms {
		e := &realmEntry{RealmAccess: realms[i]}
		if e.Anonymous {
			e.anon = &who{id: identity{realm: e.Name, authrole: e.AnonymousRole, method: "anonymous"}}
		}
		rm[e.Name] = e
	}
	ac := &access{realms: rm, keys: kt, routes: t}
	var errs []error
	ac.mux, errs = g.newMux(ac, t)
	if old != nil && old.routes == t && (len(old.keys.apiKeys) > 0) == (len(kt.apiKeys) > 0) && (len(old.keys.signingKeys) > 0) == (len(kt.signingKeys) > 0) {
		ac.openapi = old.openapi
	} else {
		ac.openapi = &apiDoc{build: func() ([]byte, error) { return g.buildOpenAPI(ac) }}
	}
	return ac, errs
}

// metrics returns the metrics of t's routes.
func (t *routeTable) metrics() []*routeMetrics {
	rms := make([]*routeMetrics, len(t.list))
	for i, cr := range t.list {
		rms[i] = cr.lbl
	}
	return rms
}

// RouteChanges is what Apply changed in the routes, by label (a route's
// name, or "METHOD path"): the routes added, removed and changed (any
// field), counted, the first ten of each named.
type RouteChanges struct {
	routes                  int
	added, removed, changed changeList
	gone                    []string // every label removed
}

// None reports whether the routes are the same as before.
func (c RouteChanges) None() bool {
	return c.added.n == 0 && c.removed.n == 0 && c.changed.n == 0
}

// LogAttrs are the changes as attributes of a log line: routes (how many
// are installed), routes_added, routes_removed, routes_changed ("0", or
// "2: GET /a, devices"). Names only: a route holds no secret.
func (c RouteChanges) LogAttrs() []any {
	return []any{"routes", c.routes, "routes_added", c.added.String(), "routes_removed", c.removed.String(), "routes_changed", c.changed.String()}
}

// diffRoutes compares two tables by label.
func diffRoutes(old, cur *routeTable) RouteChanges {
	c := RouteChanges{routes: len(cur.list)}
	if old == cur {
		return c
	}
	for _, cr := range cur.list {
		switch o := old.byLabel[cr.label]; {
		case o == nil:
			c.added.add(cr.label)
		case o != cr && !reflect.DeepEqual(o.spec, cr.spec):
			c.changed.add(cr.label)
		}
	}
	for _, o := range old.list {
		if cur.byLabel[o.label] == nil {
			c.removed.add(o.label)
			c.gone = append(c.gone, o.label)
		}
	}
	return c
}

// routeRefuses returns why a request made now to cr, a route of ac, with
// the credential w authenticated with (or none) would be refused, or
// would act as another principal than w; nil when it would be served as
// w. It judges a streamed call opened on the route of cr's label before a
// reload (grant.go); the key itself (removed, another secret or
// principal) and the token (revoked, expired) are checked apart.
func (g *Server) routeRefuses(ac *access, cr *compiledRoute, w *who) *problem {
	a := &cr.Auth
	forbidden := func(detail string) *problem {
		return newProblem(http.StatusForbidden, proto.URINotAuthorized, detail)
	}
	if a.Type == "none" {
		now, p := g.anonymous(ac, cr.Realm, cr.anon)
		switch {
		case p != nil:
			return p
		case now.id != w.id:
			return forbidden("the route now acts as another principal")
		}
		return nil
	}
	switch {
	case w.p != nil:
		if a.Type != "any" && a.Type != "bearer" || len(a.Keys) > 0 {
			return g.unauthorized("the route no longer takes bearer tokens", "")
		}
		if w.p.Realm != "" && w.p.Realm != cr.Realm {
			return forbidden("the token is for realm " + strconv.Quote(w.p.Realm))
		}
	case w.key != nil:
		kind, name := "apikey", w.key.name
		if w.key.signing {
			kind = "signed"
		} else if cur := ac.keys.apiKeys[w.key.hash]; cur != nil {
			name = cur.name // the key's name now (a reload may rename it)
		}
		if a.Type != "any" && a.Type != kind {
			if w.key.signing {
				return g.unauthorized("the route no longer takes signed requests", "")
			}
			return g.unauthorized("the route no longer takes API keys", "")
		}
		if len(a.Keys) > 0 && !contains(a.Keys, name) {
			why := "the route's auth.keys no longer name it"
			if name != w.key.name {
				why = "it was renamed"
			}
			what := "the API key"
			if w.key.signing {
				what = "the signing key"
			}
			return g.keyWithdrawn(what + " is no longer accepted here (" + why + ")")
		}
	default:
		if a.Type != "any" || len(a.Keys) > 0 {
			return g.unauthorized("the route now needs credentials", "")
		}
		now, p := g.anonymous(ac, cr.Realm, nil)
		switch {
		case p != nil:
			return p
		case now.id != w.id:
			return forbidden("requests without credentials to the route now act as role " + strconv.Quote(now.id.authrole) + " of realm " + strconv.Quote(now.id.realm))
		}
	}
	if w.id.realm != cr.Realm {
		return forbidden("the route now serves realm " + strconv.Quote(cr.Realm))
	}
	for _, need := range a.Scopes {
		if !contains(w.scopes, need) {
			return forbidden("the token lacks scope " + strconv.Quote(need) + ", which the route now requires")
		}
	}
	if len(a.Roles) > 0 && !w.hasRole(a.Roles) {
		return forbidden("the principal has none of the roles the route now requires: " + strings.Join(a.Roles, ", "))
	}
	return nil
}
