package gateway

import (
	"errors"
	"sync"

	"github.com/edgewamp/edgewamp/route"
)

// SSE streams whose credential no longer authorizes them. A stream (an
// event stream, or a call streaming its progressive results) is
// authorized once, when it opens, and would otherwise last as long as its
// client, or its call: one opened with a bearer token its OAuth2 server
// then revoked went on for as long as the token would have lived (an
// hour, by default), a streamed call for as long as the call with its
// callee producing all along, and a configuration reload that took the
// token's client or role away, no longer granted the stream's role the
// HTTP bridge, or refused requests without credentials ended none of
// them.
//
// Each open stream has a grant: whom it acts as, and how that was
// established. The grants are registered for as long as their streams
// run (at most Limits.MaxStreams), those of bearer tokens whose verifier
// names revocation ids for them (BearerRevoker) indexed by those ids too.
// RevokeBearer checks the grants its ids name; SetRealms (a reload)
// checks every grant once, outside the registry's lock (a stream opening
// meanwhile waits for the registry's copy, not for the checks; no request
// waits at all). A grant that no longer holds ends its stream at once:
// nothing more is queued to an event stream, a call is canceled at the
// router (CANCEL, killnowait, so that its callee stops producing) and its
// queued results go, and the handler's last event is a problem saying
// why; the subscription, the in-flight slot and the stream's counts go as
// when its client leaves.
//
// What is checked again is what a reload or a revocation can change: the
// bearer token (its verifier's Withdrawn: revoked, or its client,
// principal or role no longer configured), the API key or signing key
// (removed, given another secret or principal: keys.go), the realm's
// principal for requests without credentials, for the bridge endpoints
// the realm's bridge access for the role the stream acts as (its
// authrole, not any other role its token lists: bridgeAccess), and for a
// route's streamed call the route of the same label in the reloaded
// table (its auth, as a request made now would be judged by it:
// reload.go; a stream whose route the reload removed goes on). The
// router's RBAC judges each call when it is made, and takes away the
// subscriptions a role may no longer make (their streams end too:
// sess.revoked).

// grant is what let one SSE stream open, watched while the stream runs.
type grant struct {
	w      *who           // whom the stream acts as, as it authenticated (shared: read only)
	bridge bool           // opened on a bridge endpoint: the realm's bridge access must still admit w
	route  *compiledRoute // the route it was opened on, or nil
	ids    []string       // the bearer token's revocation ids (BearerRevoker), set by watch; none when its verifier names none
	stop   func()         // ends the stream's flow at once; it must not block
	once   sync.Once
	done   chan struct{} // closed once the grant no longer holds
	why    *problem      // the stream's last event; set before done is closed
}

func newGrant(w *who, bridge bool, route *compiledRoute, stop func()) *grant {
	return &grant{w: w, bridge: bridge, route: route, stop: stop, done: make(chan struct{})}
}

// end ends the grant's stream with p, once; it reports whether this call
// did.
func (gr *grant) end(p *problem) bool {
	first := false
	gr.once.Do(func() {
		gr.why = p
		close(gr.done)
		gr.stop()
		first = true
	})
	return first
}

// ended returns the problem the grant's stream ends with, or nil while the
// grant holds.
func (gr *grant) ended() *problem {
	select {
	case <-gr.done:
		return gr.why
	default:
		return nil
	}
}

// errWithdrawn stops a streamed call's writes once its grant no longer
// holds: its handler ends the stream with the grant's problem.
var errWithdrawn = errors.New("gateway: the stream's credential no longer authorizes it")

// watch registers gr, then checks it: registered first, so that a
// revocation or a reload made after the request authenticated and before
// its stream is registered is seen by this check, and any later one by
// RevokeBearer or SetRealms. It returns the problem refusing the stream,
// or nil; unwatch gr when the stream ends, refused or not.
func (g *Server) watch(gr *grant) *problem {
	if rv, ok := g.opts.Bearer.(BearerRevoker); ok && gr.w.p != nil {
		gr.ids = rv.RevocationIDs(gr.w.p)
	}
	g.grantMu.Lock()
	if g.grants == nil {
		g.grants = map[*grant]struct{}{}
		g.bearers = map[string]map[*grant]struct{}{}
	}
	g.grants[gr] = struct{}{}
	for _, id := range gr.ids {
		set := g.bearers[id]
		if set == nil {
			set = map[*grant]struct{}{}
			g.bearers[id] = set
		}
		set[gr] = struct{}{}
	}
	g.grantMu.Unlock()
	return g.withdrawn(gr)
}

// unwatch takes gr out of the registry when its stream ends.
func (g *Server) unwatch(gr *grant) {
	g.grantMu.Lock()
	defer g.grantMu.Unlock()
	delete(g.grants, gr)
	for _, id := range gr.ids {
		if set := g.bearers[id]; set != nil {
			delete(set, gr)
			if len(set) == 0 {
				delete(g.bearers, id)
			}
		}
	}
}

// withdrawn returns why gr no longer lets its stream run under the
// configuration and revocations of now (what a request made now would be
// refused with), or nil. One configuration judges it (its realms, keys
// and routes loaded once).
func (g *Server) withdrawn(gr *grant) *problem {
	w := gr.w
	ac := g.access.Load()
	if len(gr.ids) > 0 {
		if why := g.opts.Bearer.(BearerRevoker).Withdrawn(w.p); why != "" {
			return g.unauthorized("the bearer token is not valid: "+why, why)
		}
	}
	var now *compiledRoute // the stream's route in the table of now
	if gr.route != nil {
		now = ac.routes.byLabel[gr.route.label]
	}
	if w.key != nil {
		var allowed []string
		if gr.route != nil && now == nil {
			allowed = gr.route.Auth.Keys // a removed route's: its key must still be one it named
		}
		if why := ac.keys.withdrawn(w.key, allowed); why != "" {
			return g.keyWithdrawn(why)
		}
	}
	if now != nil {
		rw := w
		if hr, ok := g.opts.Bearer.(BearerRoles); ok && w.p != nil && len(now.Auth.Roles) > 0 {
			// The route's auth.roles, against the roles the principal
			// holds now (a reload may have taken one away).
			c := *w
			c.roles = hr.HeldRoles(w.p)
			rw = &c
		}
		if p := g.routeRefuses(ac, now, rw); p != nil {
			return p
		}
	}
	if w.id.method == "anonymous" {
		if p := g.anonymousChanged(ac, w); p != nil {
			return p
		}
	}
	if gr.bridge {
		return g.bridgeAccess(ac, w)
	}
	return nil
}

// RevokeBearer ends the SSE streams (event streams and streamed calls)
// opened with a bearer token that one of ids revokes (an OAuth2 token id,
// login id or client cut-off: what oauth.Options.OnRevoke reports) and
// whose verifier (BearerRevoker) confirms it, each with a "problem" event
// (401). Safe for concurrent use; it does not block on the streams'
// clients.
func (g *Server) RevokeBearer(ids []string) {
	var found []*grant
	g.grantMu.Lock()
	for _, id := range ids {
		for gr := range g.bearers[id] {
			found = append(found, gr)
		}
	}
	g.grantMu.Unlock()
	if n := g.endWithdrawn(found); n > 0 {
		g.log.Info("gateway: SSE streams ended: their bearer token was revoked", "streams", n)
	}
}

// recheckStreams checks every open stream's grant after a configuration
// reload, once: the registry is copied under its lock, and the grants are
// checked outside it.
func (g *Server) recheckStreams() {
	g.grantMu.Lock()
	all := make([]*grant, 0, len(g.grants))
	for gr := range g.grants {
		all = append(all, gr)
	}
	g.grantMu.Unlock()
	if n := g.endWithdrawn(all); n > 0 {
		g.log.Info("gateway: SSE streams ended after a configuration reload: their credential no longer authorizes them", "streams", n)
	}
}

// endWithdrawn ends the streams of the grants that no longer hold, and
// returns how many it ended.
func (g *Server) endWithdrawn(grants []*grant) int {
	n := 0
	for _, gr := range grants {
		if gr.ended() != nil {
			continue // named twice, or ended already
		}
		if p := g.withdrawn(gr); p != nil && gr.end(p) {
			g.metrics.sseWithdrawn.Add(1)
			n++
		}
	}
	return n
}

// bearerCredential is the route.Credential of a retained publication
// made with w's bearer token, when its verifier names revocation ids for
// it (BearerRevoker), else nil. A retained event speaks for its publisher
// after the request: revoking the token (oauth's OnRevoke, here or
// synced from another node: cmd has the router revoke the ids) drops the
// events published with it, as it drops those a WAMP session that logged
// in with it retained, and the Check, its verifier's Withdrawn, drops
// them where a client's cut-off or a reload withdrew the token. Before,
// the gateway's sessions are a principal's, shared by all its tokens, and
// carried no trace of the token: a revoked (leaked) token's retained
// events were given to every later subscriber for as long as the router
// ran. Another token of the principal keeps its own. It is made for
// retained publications only (the tag they keep: the ids and a copy of
// the principal without its claims).
func (g *Server) bearerCredential(w *who) *route.Credential {
	rv, ok := g.opts.Bearer.(BearerRevoker)
	if !ok || w == nil || w.p == nil {
		return nil
	}
	ids := rv.RevocationIDs(w.p)
	if len(ids) == 0 {
		return nil
	}
	p := *w.p
	p.Claims = nil // for route expressions only; kept with each retained event otherwise
	return &route.Credential{IDs: ids, Check: func() string { return rv.Withdrawn(&p) }}
}

// recheckRetained has the router drop what a retained publication made
// with cred (bearerCredential) just retained when cred was withdrawn
// meanwhile: a revocation whose walk of the retained events ran between
// the request's authentication and the publication missed it.
func (g *Server) recheckRetained(cred *route.Credential) {
	if cred == nil || g.opts.Router == nil || cred.Check() == "" {
		return
	}
	g.opts.Router.RecheckCredentials(cred.IDs)
}
