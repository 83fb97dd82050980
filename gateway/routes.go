package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/edgewamp/edgewamp/proto"
)

// Declarative REST routes: an HTTP method and a path pattern mapped to a
// WAMP call or publication, with args and kwargs built from the request
// (expr.go) and the response taken from the result.
//
//	routes:
//	  - method: GET
//	    path: /devices/{id}/state
//	    realm: realm1
//	    call: com.example.device.state
//	    args: ["$/path/id|int"]
//	    kwargs: {verbose: "$/query/verbose|bool?"}
//	    response: {body: "$/args/0"}
//	    timeout: 5s
//	    auth: {type: bearer, scopes: [devices.read]}
//
// Routes of one path share a handler that dispatches by method (405 with
// Allow for the others) and answers CORS preflights for each method's
// policy.

// compiledRoute is a validated route. Immutable once compiled: shared by
// the snapshots (access) of the reloads that keep its table, each of
// which binds its own handler to it (bindRoutes).
type compiledRoute struct {
	Route          // with its defaults
	spec     Route // as configured
	label    string
	args     *tmpl
	kwargs   *tmpl
	resp     *pointer // nil: the whole result
	usesBody bool
	params   []string
	anon     *who // the principal of an auth-none route
	cors     *corsPolicy
	lbl      *routeMetrics // the metrics of its label
}

// routeTable is one configuration's routes, compiled and checked (the
// conflicts between their patterns and the gateway's own included).
// Immutable: a reload builds another.
type routeTable struct {
	list    []*compiledRoute          // in configuration order
	byLabel map[string]*compiledRoute // by name, or "METHOD path"
	groups  []*routeGroup             // by path, in the order of their first route
}

// routeGroup is the routes of one path: one handler dispatches them by
// method.
type routeGroup struct {
	path     string
	byMethod map[string]*compiledRoute
	allow    string // "GET, POST, OPTIONS"
	first    int    // the index of its first route, for errors
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

var paramRE = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// compileRoutes compiles routes into a table, their auth.keys checked
// against kt (the keys of the same configuration). A route configured
// exactly as one of prev (the table in use, or nil) is taken from it as
// compiled (a reload of 10,000 routes that changes a few compiles a
// few). The conflicts between patterns are found when the table is bound
// to a mux (newMux).
func (g *Server) compileRoutes(routes []Route, kt *keyTable, prev *routeTable) (*routeTable, []error) {
	var errs []error
	t := &routeTable{byLabel: make(map[string]*compiledRoute, len(routes))}
	groups := map[string]*routeGroup{}
	for i := range routes {
		cr, rerrs := prev.reuse(routes[i], i, kt)
		if cr == nil {
			cr, rerrs = g.compileRoute(routes[i], i, kt)
		}
		if len(rerrs) > 0 {
			errs = append(errs, rerrs...)
			continue
		}
		gr := groups[cr.Path]
		if gr == nil {
			gr = &routeGroup{path: cr.Path, byMethod: map[string]*compiledRoute{}, first: i}
			groups[cr.Path] = gr
			t.groups = append(t.groups, gr)
		}
		if gr.byMethod[cr.Method] != nil {
			errs = append(errs, fieldErr(cr.Method+" "+cr.Path+" is routed twice", "routes", i, "path"))
			continue
		}
		if t.byLabel[cr.label] != nil {
			errs = append(errs, fieldErr("route name "+strconv.Quote(cr.label)+" is used twice", "routes", i, "name"))
			continue
		}
		t.byLabel[cr.label] = cr
		gr.byMethod[cr.Method] = cr
		t.list = append(t.list, cr)
	}
	for _, gr := range t.groups {
		order := make([]string, 0, len(gr.byMethod))
		for m, cr := range gr.byMethod {
			order = append(order, m)
			if cr.lbl == nil { // compiled now, not reused
				methods := []string{cr.Method}
				if cr.Method == http.MethodGet {
					// Its GET serves HEAD (bindRoutes): a browser's
					// preflight may name it. Before, it was not granted.
					methods = append(methods, http.MethodHead)
				}
				cr.cors = newCORSPolicy(cr.Route.CORS, methods, g.opts.APIKeyHeader)
				cr.lbl = g.metrics.configured(cr.label)
			}
		}
		if gr.byMethod[http.MethodGet] != nil {
			order = append(order, http.MethodHead) // served by GET's route (bindRoutes)
		}
		sort.Strings(order)
		gr.allow = strings.Join(order, ", ") + ", OPTIONS"
	}
	return t, errs
}

// reuse returns the route of t (nil: none) configured as rt, route i, with
// its auth.keys checked against kt; nil when t has none.
func (t *routeTable) reuse(rt Route, i int, kt *keyTable) (*compiledRoute, []error) {
	if t == nil {
		return nil, nil
	}
	label := rt.Name
	if label == "" {
		label = strings.ToUpper(rt.Method) + " " + rt.Path
	}
	cr := t.byLabel[label]
	if cr == nil || !reflect.DeepEqual(cr.spec, rt) {
		return nil, nil
	}
	var errs []error
	for k, name := range rt.Auth.Keys {
		if !kt.has(name) {
			errs = append(errs, fieldErr("no API key or signing key is named "+strconv.Quote(name), "routes", i, "auth", "keys", k))
		}
	}
	return cr, errs
}

// bindRoutes registers one handler per path of t, its routes served under
// ac, the snapshot whose mux this is: a request dispatched by it is judged
// by its keys and realms too, never by another reload's.
func (g *Server) bindRoutes(ac *access, t *routeTable, handle func(pattern string, h http.Handler, path ...any)) {
	for _, gr := range t.groups {
		hs := make(map[string]http.Handler, len(gr.byMethod))
		for m, cr := range gr.byMethod {
			hs[m] = g.wrapWith(cr.lbl, cr.label, cr.cors, refuseOrigins(cr.cors, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cr.serve(g, ac, w, r)
			})))
		}
		byMethod, allow := gr.byMethod, gr.allow
		other := g.wrapWith(g.otherLbl, "other", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			methodNotAllowed(w, allow)
		}))
		handle(gr.path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := r.Method
			if m == http.MethodOptions {
				m = r.Header.Get("Access-Control-Request-Method")
				if m == http.MethodHead {
					m = http.MethodGet // a preflight of HEAD is its GET's, as the HEAD is
				}
				if cr := byMethod[m]; cr != nil && cr.cors != nil {
					hs[m].ServeHTTP(w, r)
					return
				}
				w.Header().Set("Allow", allow)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			// [RFC 9110 §9.3.2]: "The HEAD method is identical to GET
			// except that the server MUST NOT send content in the
			// response." A GET route's HEAD is its GET, checked as it
			// is, but neither a call (headCall, streamCall) nor a
			// publication (headPublish) is made. Routes take no HEAD
			// method of their own.
			if m == http.MethodHead {
				m = http.MethodGet
			}
			if h := hs[m]; h != nil {
				h.ServeHTTP(w, r)
				return
			}
			other.ServeHTTP(w, r)
		}), "routes", gr.first, "path")
	}
}

// mountOver returns the pattern of a subtree mount ("/oauth/",
// "/.well-known/") that path lies below, or "". The mux takes such a
// route for more specific than the mount, not for a conflict, so that
// without this check a route at /oauth/token would take the OAuth2
// server's token endpoint over, silently.
func (g *Server) mountOver(path string) string {
	for pattern := range g.opts.Mount {
		p := pattern
		if i := strings.IndexByte(p, '/'); i > 0 {
			p = p[i:] // a method or host before the path
		}
		if strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			return pattern
		}
	}
	return ""
}

// compileRoute validates rt, route i, its auth.keys against kt.
func (g *Server) compileRoute(rt Route, i int, kt *keyTable) (*compiledRoute, []error) {
	spec := rt
	at := func(field ...any) []any { return append([]any{"routes", i}, field...) }
	var errs []error
	bad := func(msg string, field ...any) { errs = append(errs, fieldErr(msg, at(field...)...)) }
	rt.Method = strings.ToUpper(rt.Method)
	if !methods[rt.Method] {
		bad("method must be GET, POST, PUT, PATCH or DELETE, not "+strconv.Quote(rt.Method), "method")
	}
	if !strings.HasPrefix(rt.Path, "/") || strings.ContainsAny(rt.Path, " \t?#") {
		bad("path must start with / and hold no spaces, ? or #", "path")
	}
	if strings.HasPrefix(rt.Path, "/wamp/") || rt.Path == "/metrics" || rt.Path == "/healthz" || rt.Path == "/readyz" || rt.Path == "/openapi.json" {
		bad("path "+rt.Path+" is the gateway's own", "path")
	}
	if m := g.mountOver(rt.Path); m != "" {
		bad("path "+rt.Path+" is at or below the mount "+m+" (the OAuth2 server's endpoints): the route would take its endpoints over", "path")
	}
	cr := &compiledRoute{Route: rt, spec: spec}
	for _, m := range paramRE.FindAllStringSubmatch(rt.Path, -1) {
		cr.params = append(cr.params, m[1])
	}
	if rt.Realm == "" || !proto.ValidURI([]byte(rt.Realm), proto.URILoose) {
		bad("realm must be a realm URI", "realm")
	}
	switch {
	case (rt.Call == "") == (rt.Publish == ""):
		bad("a route needs exactly one of call and publish")
	case rt.Call != "" && !proto.ValidURI([]byte(rt.Call), proto.URILoose):
		bad(strconv.Quote(rt.Call)+" is not a procedure URI", "call")
	case rt.Publish != "" && !proto.ValidURI([]byte(rt.Publish), proto.URILoose):
		bad(strconv.Quote(rt.Publish)+" is not a topic URI", "publish")
	case sessionScoped[rt.Call]:
		bad(sessionScopedText(rt.Call), "call")
	}
	cr.label = rt.Name
	if cr.label == "" {
		cr.label = rt.Method + " " + rt.Path
	} else if ownLabel(cr.label) {
		bad("route name "+strconv.Quote(cr.label)+" is the metrics label of one of the gateway's own endpoints; name the route otherwise", "name")
	}
	check := func(p *pointer) error {
		if len(p.tokens) == 0 {
			return errors.New(p.src + ": point into path, query, headers, body, auth or claims")
		}
		switch p.tokens[0] {
		case "path":
			if len(p.tokens) != 2 || !contains(cr.params, p.tokens[1]) {
				return errors.New(p.src + ": the path pattern has no parameter {" + strings.Join(p.tokens[1:], "/") + "}")
			}
		case "query", "headers":
			if len(p.tokens) != 2 {
				return errors.New(p.src + ": " + p.tokens[0] + " values are strings: $/" + p.tokens[0] + "/name")
			}
			if p.tokens[0] == "headers" {
				// Header names are case-insensitive (RFC 9110 §5.1), and
				// build keys them in lower case: before, "$/headers/X-Trace"
				// never found the header, and a route requiring it
				// answered every request 400 "the request lacks" it.
				p.tokens[1] = strings.ToLower(p.tokens[1])
			}
		case "body":
			cr.usesBody = true
		case "auth", "claims":
		default:
			return errors.New(p.src + ": point into path, query, headers, body, auth or claims")
		}
		return nil
	}
	var err error
	if rt.Args != nil {
		if cr.args, err = compileTmpl(rt.Args, check); err != nil {
			bad(err.Error(), "args")
		} else if cr.args.kind != tArr && cr.args.kind != tPtr {
			bad("args must be a list or a pointer to one", "args")
		}
	}
	if rt.Kwargs != nil {
		if cr.kwargs, err = compileTmpl(rt.Kwargs, check); err != nil {
			bad(err.Error(), "kwargs")
		} else if cr.kwargs.kind != tObj && cr.kwargs.kind != tPtr {
			bad("kwargs must be a map or a pointer to one", "kwargs")
		}
	}
	if rt.Publish != "" && rt.Response.Body != "" {
		bad("a publish route answers 202 (or 200 {\"publication\":id} with acknowledge); it has no response body", "response", "body")
	}
	if b := rt.Response.Body; b != "" && b != "$" {
		p, err := parsePointer(b)
		switch {
		case !strings.HasPrefix(b, "$"), err != nil:
			bad(`response body is "$" or a pointer into the result: "$/args/0", "$/kwargs/name"`, "response", "body")
		case p.conv != "" || p.optional || len(p.tokens) == 0 || (p.tokens[0] != "args" && p.tokens[0] != "kwargs"):
			bad(`response body is "$" or a pointer into the result: "$/args/0", "$/kwargs/name"`, "response", "body")
		default:
			cr.resp = p
		}
	}
	if s := rt.Response.Status; s != 0 && (s < 200 || s > 299) {
		bad("response status must be a success status (200-299)", "response", "status")
	}
	if rt.Timeout < 0 {
		bad("timeout must not be negative", "timeout")
	}
	if rt.Timeout == 0 {
		cr.Timeout = g.opts.CallTimeout
	}
	if rt.BodyLimit < 0 {
		bad("body_limit must not be negative", "body_limit")
	}
	if rt.BodyLimit > MaxBodyMax {
		bad(strconv.Itoa(rt.BodyLimit)+" bytes is above the maximum, "+strconv.Itoa(MaxBodyMax)+" bytes (16MiB, the largest WAMP message): the gateway reads a body whole", "body_limit")
	}
	if rt.BodyLimit == 0 {
		cr.BodyLimit = g.opts.Limits.MaxBody
	}
	switch rt.Auth.Type {
	case "":
		cr.Auth.Type = "any"
	case "any", "bearer", "apikey", "signed":
	case "none":
		if len(rt.Auth.Scopes) > 0 || len(rt.Auth.Roles) > 0 {
			bad("a route without authentication cannot require scopes or roles", "auth")
		}
		cr.anon = &who{id: identity{realm: rt.Realm, authid: rt.AuthID, authrole: rt.Role, method: "gateway"}}
		if rt.Role == "" {
			cr.anon = nil // the realm's anonymous role
		}
	default:
		bad("auth type must be none, any, bearer, apikey or signed, not "+strconv.Quote(rt.Auth.Type), "auth", "type")
	}
	if len(rt.Auth.Scopes) > 0 && cr.Auth.Type != "bearer" {
		bad("scopes need auth type bearer", "auth", "scopes")
	}
	if (rt.AuthID != "" || rt.Role != "") && rt.Auth.Type != "none" {
		bad("authid and role give the identity of a route with auth type none", "role")
	}
	if len(rt.Auth.Keys) > 0 && (cr.Auth.Type == "bearer" || cr.Auth.Type == "none") {
		bad("keys name API keys and signing keys: they need auth type apikey, signed or any", "auth", "keys")
	}
	for k, name := range rt.Auth.Keys {
		if !kt.has(name) {
			bad("no API key or signing key is named "+strconv.Quote(name), "auth", "keys", k)
		}
	}
	for uri, st := range rt.Errors {
		if st < 400 || st > 599 {
			bad("status "+strconv.Itoa(st)+" is not an error status (400-599)", "errors", uri)
		}
	}
	errs = append(errs, validateCORS(rt.CORS, at("cors")...)...)
	return cr, errs
}

// serve handles one request of the route, judged by ac (the snapshot
// whose mux dispatched it) from end to end.
func (cr *compiledRoute) serve(g *Server, ac *access, w http.ResponseWriter, r *http.Request) {
	if cr.Call != "" && !acceptsSSE(r) && !acceptsJSON(r) {
		writeProblem(w, notAcceptable()) // before the call, and its body unread
		return
	}
	if cr.Publish != "" && cr.Acknowledge && !acceptsJSON(r) {
		writeProblem(w, ackNotAcceptable()) // likewise, before the publication
		return
	}
	early, p := g.refuseUnread(ac, r, cr.Realm, &cr.Auth, cr.anon)
	if p != nil {
		writeProblem(w, p) // before the body is asked for (Expect: 100-continue)
		return
	}
	var body []byte
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		var p *problem
		if body, p = g.readBody(w, r, cr.BodyLimit); p != nil {
			writeProblem(w, p)
			return
		}
	} else if p := g.discardBody(r, cr.BodyLimit); p != nil {
		writeProblem(w, p)
		return
	}
	who, p := early, g.lapsed(early)
	if who == nil {
		who, p = g.authenticate(ac, r, cr.Realm, &cr.Auth, body, cr.anon)
	}
	if p != nil {
		writeProblem(w, p)
		return
	}
	args, kwargs, p := cr.build(r, body, who)
	if p != nil {
		writeProblem(w, p)
		return
	}
	// The arguments come from the request (its body, query, path,
	// headers) and a token's claims: a string there starting with NUL is
	// a WAMP binary string, refused as the bridge refuses one
	// (checkWAMP; startCall and publish would check it otherwise, on the
	// shard).
	if cr.Publish != "" {
		pr := &pubReq{uri: cr.Publish, args: args, kwargs: kwargs, retain: cr.Retain, discloseMe: cr.DiscloseMe}
		if p := pr.checkWAMP(); p != nil {
			writeProblem(w, p)
			return
		}
		if r.Method == http.MethodHead {
			headPublish(w, cr.Acknowledge, cr.Response.Status)
			return
		}
		g.doPublish(w, r, who, pr, cr.Acknowledge, cr.Response.Status, cr.Errors)
		return
	}
	req := &callReq{uri: cr.Call, args: args, kwargs: kwargs, timeout: cr.Timeout, discloseMe: cr.DiscloseMe}
	if p := req.checkWAMP(); p != nil {
		writeProblem(w, p)
		return
	}
	if acceptsSSE(r) {
		g.streamCall(w, r, who, false, cr, req, cr.Errors)
		return
	}
	if r.Method == http.MethodHead {
		headCall(w, cr.Response.Status)
		return
	}
	s, a, p := g.pool.acquire(who.id, r.RemoteAddr)
	if p != nil {
		writeProblem(w, p)
		return
	}
	res, c := g.call(r.Context(), s, req)
	defer g.pool.release(a) // once the answer is written, as bridgeCall's
	// A call's result is live and usually the principal's own: no
	// cache (a browser's, a proxy's) keeps it, for a GET route above
	// all. (The bridge's POST /call, not cacheable, goes without.)
	w.Header()["Cache-Control"] = noStore
	if res.err != "" || cr.resp == nil && cr.Response.Status == 0 {
		g.answerCall(w, r, res, cr.Errors)
	} else {
		cr.respond(g, w, res)
	}
	recycle(c)
}

// headCall answers the HEAD of a call route asking for JSON, checked as
// its GET up to the call, without calling (RFC 9110 §9.3.2: a HEAD is a
// GET without its content, not a second action; the streamed call's is
// streamCall's): the status and header fields of a result, and no
// Content-Length, known only once called (which the RFC allows), as
// headPublish answers a publication's. An error the call would give (a
// mapped one's status, a 502) shows on the GET only. Before, every HEAD
// made the call.
func headCall(w http.ResponseWriter, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Content-Type"] = ctJSON
	w.WriteHeader(status)
}

// headPublish answers the HEAD of a publishing GET route, checked as its
// GET up to the publication, without publishing (RFC 9110 §9.3.2: a HEAD
// is a GET without its content, not a second action): the status of a
// publication accepted, an acknowledged one's Content-Type, and no
// Content-Length for its {"publication":id}, known only once published
// (which the RFC allows). A refusal of the router's own (not_authorized)
// shows on the GET only. Before, every HEAD published.
func headPublish(w http.ResponseWriter, ack bool, status int) {
	if !ack {
		if status == 0 {
			status = http.StatusAccepted
		}
		if status != http.StatusNoContent {
			w.Header().Set("Content-Length", "0") // as the GET's empty answer
		}
		w.WriteHeader(status)
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
}

// streamStatus is the status of the route's call streamed as SSE: its
// response.status, written before the call's outcome is known (a failed
// call ends its stream with a problem event, as under 200), but 200 for
// 204, 205 and 206, whose answers cannot carry a stream. Before, every
// stream answered 200.
func (cr *compiledRoute) streamStatus() int {
	switch s := cr.Response.Status; s {
	case 0, http.StatusNoContent, http.StatusResetContent, http.StatusPartialContent:
		return http.StatusOK
	default:
		return s
	}
}

// listHeaders are the request headers whose value is a list (RFC 9110
// §5.3: its lines may be joined, in order, with commas; Cookie's with
// "; ", RFC 9113 §8.2.3), by lower-case name, with the separator a
// route reads their lines joined with. Any other header a route reads,
// given more than once, is refused (repeatedValue).
var listHeaders = map[string]string{
	"accept": ", ", "accept-charset": ", ", "accept-encoding": ", ", "accept-language": ", ",
	"baggage": ", ", "cache-control": ", ", "connection": ", ", "cookie": "; ", "forwarded": ", ",
	"if-match": ", ", "if-none-match": ", ", "pragma": ", ", "prefer": ", ", "te": ", ",
	"tracestate": ", ", "via": ", ", "x-forwarded-for": ", ",
}

// build evaluates args and kwargs against the request.
func (cr *compiledRoute) build(r *http.Request, body []byte, who *who) (args, kwargs []byte, p *problem) {
	if cr.args == nil && cr.kwargs == nil {
		return nil, nil, nil
	}
	ctx := map[string]any{}
	path := map[string]any{}
	for _, name := range cr.params {
		path[name] = r.PathValue(name)
	}
	ctx["path"] = path
	// A query parameter or header given more than once is a repeatedValue:
	// a pointer to it is refused, "/query/id is given twice" (lookupIn),
	// as a body's member given twice is. Before, the first was taken
	// (?id=1&id=2 called with 1), where a proxy or filter in front of the
	// gateway reading the last saw another request.
	query := map[string]any{}
	for k, v := range r.URL.Query() {
		switch {
		case len(v) > 1:
			query[k] = repeatedValue{}
		case len(v) == 1:
			query[k] = v[0]
		}
	}
	ctx["query"] = query
	headers := map[string]any{}
	for k, v := range r.Header {
		k = strings.ToLower(k)
		prev, again := headers[k] // names net/http does not canonicalize (x_trace, X_Trace)
		switch sep, list := listHeaders[k]; {
		case list && len(v) > 0 && (len(v) > 1 || again):
			// A list's lines are one value (RFC 9110 §5.3): a proxy
			// adds its own Forwarded or Via line, HAProxy its own
			// X-Forwarded-For. Refused as repeated, a route reading them
			// answered every request through such proxies 400.
			s := strings.Join(v, sep)
			if p, ok := prev.(string); ok {
				s = p + sep + s
			}
			headers[k] = s
		case len(v) > 1 || again:
			headers[k] = repeatedValue{}
		case len(v) == 1:
			headers[k] = v[0]
		}
	}
	ctx["headers"] = headers
	ctx["auth"] = map[string]any{"authid": who.id.authid, "authrole": who.id.authrole, "method": who.id.method}
	if who.p != nil && who.p.Claims != nil {
		ctx["claims"] = who.p.Claims
	} else {
		ctx["claims"] = map[string]any{}
	}
	if cr.usesBody && body != nil {
		// Looked into as it is (rawJSON), not decoded whole.
		v, err := asRawJSON(body)
		if err != nil {
			return nil, nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "malformed JSON body: "+err.Error())
		}
		ctx["body"] = v
	}
	eval := func(t *tmpl, open byte, what string) ([]byte, *problem) {
		if t == nil {
			return nil, nil
		}
		b, ok, err := t.eval(nil, ctx)
		if err != nil {
			return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, err.Error())
		}
		if !ok || string(b) == "null" {
			return nil, nil
		}
		if b[0] != open {
			return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, what)
		}
		if jsonDepth(b) > proto.MaxDepth {
			return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "arguments nest deeper than "+strconv.Itoa(proto.MaxDepth)+" levels")
		}
		return b, nil
	}
	if args, p = eval(cr.args, '[', "args must be a list"); p != nil {
		return nil, nil, p
	}
	kwargs, p = eval(cr.kwargs, '{', "kwargs must be an object")
	return args, kwargs, p
}

// respond writes a call result through the route's response mapping.
func (cr *compiledRoute) respond(g *Server, w http.ResponseWriter, res callReply) {
	status := cr.Response.Status
	if status == 0 {
		status = http.StatusOK
	}
	out, p := cr.result(res)
	if p != nil {
		writeProblem(w, p)
		return
	}
	g.writeResult(w, status, out)
}

// result is the document the route answers a call's result with: what
// its response.body pointer names, or the whole {"args","kwargs"}. A
// result without what the pointer names is a 502 problem. A call
// streamed as SSE ends with it too (streamCall's result event).
func (cr *compiledRoute) result(res callReply) ([]byte, *problem) {
	if cr.resp == nil {
		return resultDoc(res), nil
	}
	// Looked into as it is (rawJSON), not decoded whole.
	var out []byte
	v, err := asRawJSON(resultDoc(res))
	if err == nil {
		if m, found := lookup(v, cr.resp.tokens); found {
			out, err = jsonMarshal(m.(rawJSON))
		} else {
			err = errors.New("the result has no " + strings.TrimPrefix(cr.resp.src, "$"))
		}
	}
	if err != nil {
		return nil, newProblem(http.StatusBadGateway, URIUpstream, err.Error())
	}
	return out, nil
}

func jsonMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := newJSONEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// ownLabel reports whether name is the metrics label (route="…") of one of
// the gateway's own endpoints (Server.routes): a route named so would
// share its series.
func ownLabel(name string) bool {
	switch name {
	case "bridge_call", "bridge_events", "bridge_publish", "healthz", "readyz", "metrics", "openapi", "other":
		return true
	}
	return strings.HasPrefix(name, "mount:")
}
