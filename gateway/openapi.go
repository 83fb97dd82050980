package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// GET /openapi.json: an OpenAPI 3.1 document of the bridge endpoints, the
// configured routes and the health and metrics endpoints, of a snapshot's
// configuration (access): New's, checked at New, then a reload's that
// changes the routes or adds the first or removes the last key of a kind
// (the security schemes), built when first asked for.

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func problemResponses(codes ...string) obj {
	out := obj{}
	for _, c := range codes {
		out[c] = obj{"$ref": "#/components/responses/Problem"}
	}
	return out
}

func jsonContent(schema any) obj {
	return obj{"application/json": obj{"schema": schema}}
}

// buildOpenAPI builds the document of ac's routes and keys.
func (g *Server) buildOpenAPI(ac *access) ([]byte, error) {
	paths := obj{}
	realmParam := obj{"name": "realm", "in": "path", "required": true, "description": "Realm URI", "schema": obj{"type": "string"}}
	security := g.securityRequirements(ac)
	callResp := problemResponses("400", "401", "403", "404", "406", "408", "413", "415", "429", "502", "503", "504")
	callResp["200"] = obj{"description": "The call's result; with Accept: text/event-stream, SSE events \"progress\", then \"result\" or \"problem\" (a call failing before its first event or keepalive is answered with its problem status instead).",
		"content": obj{
			"application/json":  obj{"schema": ref("Result")},
			"text/event-stream": obj{"schema": obj{"type": "string"}},
		}}
	paths["/wamp/{realm}/call/{procedure}"] = obj{
		"post": obj{
			"operationId": "wampCall",
			"summary":     "Call a WAMP procedure",
			"tags":        []string{"bridge"},
			"parameters": []any{realmParam,
				obj{"name": "procedure", "in": "path", "required": true, "description": "Procedure URI", "schema": obj{"type": "string"}}},
			"requestBody": obj{"required": false, "content": jsonContent(ref("CallRequest"))},
			"responses":   callResp,
			"security":    security,
		},
	}
	pubResp := problemResponses("400", "401", "403", "404", "406", "413", "415", "429", "503") // 406: acknowledged, with an Accept admitting no JSON
	pubResp["202"] = obj{"description": "Published (without acknowledge)."}
	pubResp["200"] = obj{"description": "Published and acknowledged.", "content": jsonContent(ref("Publication"))}
	paths["/wamp/{realm}/publish/{topic}"] = obj{
		"post": obj{
			"operationId": "wampPublish",
			"summary":     "Publish to a WAMP topic",
			"tags":        []string{"bridge"},
			"parameters": []any{realmParam,
				obj{"name": "topic", "in": "path", "required": true, "description": "Topic URI", "schema": obj{"type": "string"}}},
			"requestBody": obj{"required": false, "content": jsonContent(ref("PublishRequest"))},
			"responses":   pubResp,
			"security":    security,
		},
	}
	evResp := problemResponses("400", "401", "403", "404", "429", "503")
	evResp["200"] = obj{"description": "A text/event-stream: one event per WAMP EVENT, id = publication id, data = an Event document.",
		"content": obj{"text/event-stream": obj{"schema": obj{"type": "string"}, "x-event-data": ref("Event")}}}
	paths["/wamp/{realm}/events/{topic}"] = obj{
		"get": obj{
			"operationId": "wampEvents",
			"summary":     "Follow a WAMP topic as Server-Sent Events",
			"tags":        []string{"bridge"},
			"parameters": []any{realmParam,
				obj{"name": "topic", "in": "path", "required": true, "description": "Topic URI or pattern", "schema": obj{"type": "string"}},
				obj{"name": "match", "in": "query", "schema": obj{"type": "string", "enum": []string{"exact", "prefix", "wildcard"}}},
				obj{"name": "retained", "in": "query", "description": "Deliver the topic's retained event first", "schema": obj{"type": "boolean"}},
				obj{"name": "access_token", "in": "query", "description": "Bearer token (for EventSource, which cannot set headers)", "schema": obj{"type": "string"}},
				obj{"name": "Last-Event-ID", "in": "header", "description": "The last publication id seen; the retained event is delivered unless it is that one", "schema": obj{"type": "string"}}},
			"responses": evResp,
			"security":  security,
		},
	}
	ids := map[string]bool{"wampCall": true, "wampPublish": true, "wampEvents": true, "healthz": true, "readyz": true, "metrics": true, "openapi": true}
	// The routes whose pattern is a template as it is first: one that
	// openAPIPath rewrites to the same template goes second (addRouteOp).
	for _, plain := range []bool{true, false} {
		for _, cr := range ac.routes.list {
			if (openAPIPath(cr.Path) == cr.Path) == plain {
				g.addRouteOp(ac, paths, cr, ids)
			}
		}
	}
	paths["/healthz"] = obj{"get": obj{"operationId": "healthz", "summary": "Liveness", "tags": []string{"operations"},
		"responses": obj{"200": obj{"description": "The process is alive."}}}}
	paths["/readyz"] = obj{"get": obj{"operationId": "readyz", "summary": "Readiness: listeners up (and the mesh connected where configured)", "tags": []string{"operations"},
		"responses": obj{"200": obj{"description": "Ready."}, "503": obj{"$ref": "#/components/responses/Problem"}}}}
	paths["/metrics"] = obj{"get": obj{"operationId": "metrics", "summary": "Prometheus metrics", "tags": []string{"operations"},
		"responses": obj{"200": obj{"description": "Prometheus text format.", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}}}}}
	paths["/openapi.json"] = obj{"get": obj{"operationId": "openapi", "summary": "This document", "tags": []string{"operations"},
		"responses": obj{"200": obj{"description": "OpenAPI 3.1 document.", "content": jsonContent(obj{"type": "object"})}}}}

	doc := obj{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": obj{
			"title":       "edgewamp HTTP gateway",
			"version":     "1",
			"description": "HTTP to WAMP: the zero-config bridge (call, publish, events), the configured REST routes, health and metrics. Errors are RFC 9457 problem documents carrying the WAMP error URI, args and kwargs.",
		},
		"paths": paths,
		"components": obj{
			"schemas":         schemas(),
			"responses":       obj{"Problem": obj{"description": "An error (RFC 9457).", "content": obj{"application/problem+json": obj{"schema": ref("Problem")}}}},
			"securitySchemes": g.declaredSchemes(ac),
		},
	}
	return json.Marshal(doc)
}

func schemas() obj {
	anyArr := obj{"type": "array", "description": "WAMP positional arguments (JSON; binary values are \"\\u0000\" + base64)"}
	anyObj := obj{"type": "object", "description": "WAMP keyword arguments"}
	return obj{
		"CallRequest": obj{"type": "object", "additionalProperties": false, "properties": obj{
			"args": anyArr, "kwargs": anyObj,
			"options": obj{"type": "object", "additionalProperties": false, "properties": obj{
				"timeout":     obj{"type": "integer", "minimum": 0, "description": "milliseconds"},
				"disclose_me": obj{"type": "boolean"}}}}},
		"Result": obj{"type": "object", "required": []string{"args", "kwargs"}, "properties": obj{"args": anyArr, "kwargs": anyObj}},
		"PublishRequest": obj{"type": "object", "additionalProperties": false, "properties": obj{
			"args": anyArr, "kwargs": anyObj,
			"options": obj{"type": "object", "additionalProperties": false, "properties": obj{
				"acknowledge": obj{"type": "boolean"}, "retain": obj{"type": "boolean"}, "disclose_me": obj{"type": "boolean"},
				"exclude": obj{"type": "array", "items": obj{"type": "integer"}}, "eligible": obj{"type": "array", "items": obj{"type": "integer"}},
				"exclude_authid": obj{"type": "array", "items": obj{"type": "string"}}, "eligible_authid": obj{"type": "array", "items": obj{"type": "string"}},
				"exclude_authrole": obj{"type": "array", "items": obj{"type": "string"}}, "eligible_authrole": obj{"type": "array", "items": obj{"type": "string"}}}}}},
		"Publication": obj{"type": "object", "required": []string{"publication"}, "properties": obj{"publication": obj{"type": "integer"}}},
		"Event": obj{"type": "object", "required": []string{"topic", "publication", "args", "kwargs"}, "properties": obj{
			"topic": obj{"type": "string"}, "publication": obj{"type": "integer"}, "args": anyArr, "kwargs": anyObj,
			"publisher": obj{"type": "integer"}, "publisher_authid": obj{"type": "string"}, "publisher_authrole": obj{"type": "string"},
			"retained":   obj{"type": "boolean"},
			"ppt_scheme": obj{"type": "string"}, "ppt_serializer": obj{"type": "string"}, "ppt_cipher": obj{"type": "string"}, "ppt_keyid": obj{"type": "string"},
			"enc_algo": obj{"type": "string"}, "enc_serializer": obj{"type": "string"}}},
		"Problem": obj{"type": "object", "required": []string{"type", "title", "status", "error"}, "properties": obj{
			"type": obj{"type": "string"}, "title": obj{"type": "string"}, "status": obj{"type": "integer"},
			"detail": obj{"type": "string"}, "error": obj{"type": "string", "description": "WAMP error URI"},
			"args": anyArr, "kwargs": anyObj}},
	}
}

// securitySchemes are the schemes a request may use under ac: the
// bridge's alternatives.
func (g *Server) securitySchemes(ac *access) obj {
	kt := ac.keys // a reload rebuilds the document when a kind comes or goes
	return g.schemes(len(kt.apiKeys) > 0, len(kt.signingKeys) > 0)
}

// declaredSchemes are the document's securitySchemes: those of now, and
// those a route's operation requires (auth type apikey or signed) even
// when a reload left no key of the kind (the route refuses every key
// then), since a requirement must name a declared scheme.
func (g *Server) declaredSchemes(ac *access) obj {
	kt := ac.keys
	apiKey, signed := len(kt.apiKeys) > 0, len(kt.signingKeys) > 0
	keyedAPI, _ := keyedKinds(kt)
	for _, cr := range ac.routes.list {
		keyed := cr.Auth.Type == "any" && len(cr.Auth.Keys) > 0 // takes the keys named only
		apiKey = apiKey || cr.Auth.Type == "apikey" || keyed && keyedAPI
		signed = signed || cr.Auth.Type == "signed"
	}
	return g.schemes(apiKey, signed)
}

// keyedKinds returns the schemes a route of type any with auth.keys
// requires under kt: the kinds of key configured (the document is rebuilt
// when a kind comes or goes), an API key when there is none (the route
// then refuses every request, as an apikey route does).
func keyedKinds(kt *keyTable) (apiKey, signed bool) {
	signed = len(kt.signingKeys) > 0
	return len(kt.apiKeys) > 0 || !signed, signed
}

func (g *Server) schemes(apiKey, signed bool) obj {
	s := obj{}
	if g.opts.Bearer != nil {
		s["bearer"] = obj{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
	}
	if apiKey {
		s["apiKey"] = obj{"type": "apiKey", "in": "header", "name": g.opts.APIKeyHeader}
	}
	if signed {
		s["signed"] = obj{"type": "apiKey", "in": "query", "name": "signature",
			"description": "Crossbar-style signed request: key, timestamp, seq, nonce and signature = base64url(HMAC-SHA256(secret, key+timestamp+seq+nonce+body))"}
	}
	return s
}

// securityRequirements lists the alternatives the bridge accepts (an
// empty requirement: anonymous, where a realm allows it).
func (g *Server) securityRequirements(ac *access) []any {
	var out []any
	for _, name := range sortedKeys(g.securitySchemes(ac)) {
		out = append(out, obj{name: []string{}})
	}
	return append(out, obj{})
}

// addRouteOp adds cr's operation to paths; ids are the operationIds
// taken, to which it adds its own.
func (g *Server) addRouteOp(ac *access, paths obj, cr *compiledRoute, ids map[string]bool) {
	method := strings.ToLower(cr.Method)
	path := openAPIPath(cr.Path)
	if it, _ := paths[path].(obj); it != nil && it[method] != nil {
		// Two patterns of one template (/a/{x} and /a/{x...}, /a/ and
		// /a/{$}): the one rewritten keeps its pattern rather than
		// replace the other's operation.
		path = cr.Path
	}
	item, _ := paths[path].(obj)
	if item == nil {
		item = obj{}
		paths[path] = item
	}
	var params []any
	for _, p := range cr.params {
		params = append(params, obj{"name": p, "in": "path", "required": true, "schema": obj{"type": "string"}})
	}
	queries := map[string]bool{}
	headers := map[string]bool{}
	collect := func(t *tmpl) {
		var walk func(t *tmpl)
		walk = func(t *tmpl) {
			if t == nil {
				return
			}
			switch t.kind {
			case tPtr:
				if len(t.ptr.tokens) == 2 {
					switch t.ptr.tokens[0] {
					case "query":
						queries[t.ptr.tokens[1]] = queries[t.ptr.tokens[1]] || !t.ptr.optional
					case "headers":
						headers[t.ptr.tokens[1]] = headers[t.ptr.tokens[1]] || !t.ptr.optional
					}
				}
			case tArr:
				for _, e := range t.arr {
					walk(e)
				}
			case tObj:
				for _, e := range t.vals {
					walk(e)
				}
			}
		}
		walk(t)
	}
	collect(cr.args)
	collect(cr.kwargs)
	for _, q := range sortedKeys(queries) {
		params = append(params, obj{"name": q, "in": "query", "required": queries[q], "schema": obj{"type": "string"}})
	}
	for _, h := range sortedKeys(headers) {
		params = append(params, obj{"name": h, "in": "header", "required": headers[h], "schema": obj{"type": "string"}})
	}
	op := obj{
		"operationId": uniqueID(operationID(cr.label), ids),
		"summary":     cr.Summary,
		"tags":        []string{"routes"},
		"responses":   problemResponses("400", "401", "403", "404", "406", "413", "415", "429", "502", "503", "504"),
	}
	if op["summary"] == "" {
		if cr.Call != "" {
			op["summary"] = "Calls " + cr.Call
		} else {
			op["summary"] = "Publishes to " + cr.Publish
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if cr.usesBody {
		op["requestBody"] = obj{"required": true, "content": jsonContent(obj{})}
	}
	resp := op["responses"].(obj)
	switch {
	case cr.Publish != "" && cr.Acknowledge:
		resp[statusStr(cr.Response.Status, 200)] = obj{"description": "Published.", "content": jsonContent(ref("Publication"))}
	case cr.Publish != "":
		resp[statusStr(cr.Response.Status, 202)] = obj{"description": "Published."}
	case cr.resp == nil:
		resp[statusStr(cr.Response.Status, 200)] = obj{"description": "The call's result.", "content": jsonContent(ref("Result"))}
	default:
		resp[statusStr(cr.Response.Status, 200)] = obj{"description": "The call's result at " + strings.TrimPrefix(cr.resp.src, "$") + ".", "content": jsonContent(obj{})}
	}
	switch cr.Auth.Type {
	case "none":
		op["security"] = []any{obj{}}
	case "bearer":
		op["security"] = []any{obj{"bearer": scopesOrEmpty(cr.Auth.Scopes)}}
	case "apikey":
		op["security"] = []any{obj{"apiKey": []string{}}}
	case "signed":
		op["security"] = []any{obj{"signed": []string{}}}
	case "any":
		if len(cr.Auth.Keys) > 0 {
			// The keys it names: an API key or a signed request, of the
			// kinds configured, no bearer token, not anonymous.
			apiKey, signed := keyedKinds(ac.keys)
			var sec []any
			if apiKey {
				sec = append(sec, obj{"apiKey": []string{}})
			}
			if signed {
				sec = append(sec, obj{"signed": []string{}})
			}
			op["security"] = sec
			break
		}
		op["security"] = g.securityRequirements(ac)
	default:
		op["security"] = g.securityRequirements(ac)
	}
	item[method] = op
}

// openAPIPath is a route's pattern (net/http.ServeMux syntax) as an
// OpenAPI path template: "{name...}" is the parameter "{name}", and
// "{$}" (the end of the path) is left out. Before, the document had them
// as written: a template naming no declared parameter ("rest..." for the
// parameter "rest", "$" for none), which OpenAPI forbids.
func openAPIPath(pattern string) string {
	pattern = strings.ReplaceAll(pattern, "{$}", "")
	return paramRE.ReplaceAllString(pattern, "{$1}")
}

// uniqueID returns id, or id with the first free suffix 2, 3 … when ids
// has it ("route" when id is empty), and adds it to ids. OpenAPI requires
// operationIds unique among the operations: before, routes named "a-b"
// and "a/b", or "wamp-call" (the bridge's wampCall), or "GET /a-b" and
// "GET /a/b", shared one, and a name without letters or digits gave "".
func uniqueID(id string, ids map[string]bool) string {
	if id == "" {
		id = "route"
	}
	out := id
	for n := 2; ids[out]; n++ {
		out = id + strconv.Itoa(n)
	}
	ids[out] = true
	return out
}

func scopesOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func statusStr(s, def int) string {
	if s == 0 {
		s = def
	}
	return strconv.Itoa(s)
}

// operationID turns a route label into an OpenAPI operationId.
func operationID(label string) string {
	var b strings.Builder
	up := false
	for _, r := range label {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			if up && b.Len() > 0 && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		default:
			up = true
		}
	}
	return b.String()
}

func (g *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	doc, err := g.access.Load().openapi.get()
	if err != nil {
		g.log.Error("gateway: building the OpenAPI document", "err", err)
		writeProblem(w, newProblem(http.StatusInternalServerError, "edgewamp.error.internal", "internal error"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

// apiDoc is a snapshot's OpenAPI document, built when first asked for: a
// reload of many routes does not build one that nobody reads (10,000
// routes take a second or so), nor does a storm of reloads, and the
// first request after a reload waits for it, others with it.
type apiDoc struct {
	once  sync.Once
	build func() ([]byte, error)
	doc   []byte
	err   error
}

func (d *apiDoc) get() ([]byte, error) {
	d.once.Do(func() {
		d.doc, d.err = d.build()
		d.build = nil
	})
	return d.doc, d.err
}
