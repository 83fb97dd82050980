package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The routes replaced by a configuration reload (Prepare and Apply,
// reload.go): a route added is served, a removed one is not, a changed
// one acts as changed, from the request that starts after Apply; a bad
// update is refused whole; requests racing the swap see one table; the
// SSE streamed calls of a route are judged by the route of its label in
// the new table. Before, the routes changed only with a restart.

const carolKey = "carol-key-0123456789"

// reloadTo prepares and applies an update with the realms in use.
func reloadTo(t testing.TB, e *env, apiKeys []APIKey, signingKeys []SigningKey, routes []Route) RouteChanges {
	t.Helper()
	p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: apiKeys, SigningKeys: signingKeys, Routes: routes})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return e.gw.Apply(p).RouteChanges
}

// versionCallee registers procs on realm1: each answers its name and the
// first argument, "com.v1:7".
func versionCallee(t *testing.T, e *env, procs ...string) {
	t.Helper()
	s := e.dial("realm1", proto.JSON)
	for _, proc := range procs {
		e.register(s, proc, func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{fmt.Sprint(append([]any{proc, ":"}, inv.Args...)...)}}, nil
		})
	}
}

// answer sends a request and returns its status and body.
func answer(t testing.TB, e *env, method, path string, hdr ...string) (int, string) {
	t.Helper()
	body := ""
	if method != "GET" {
		body = "{}"
	}
	r, b := e.do(method, path, body, hdr...)
	return r.StatusCode, string(b)
}

// openAPIOps returns the document's operations: "get /path" → summary.
func openAPIOps(t *testing.T, e *env) map[string]string {
	t.Helper()
	_, body := e.do("GET", "/openapi.json", "")
	var doc struct {
		Paths map[string]map[string]struct {
			Summary  string
			Security []map[string][]string
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			ops[method+" "+path] = op.Summary
			for _, req := range op.Security {
				for name := range req {
					ops[method+" "+path] += " [" + name + "]"
				}
			}
		}
	}
	return ops
}

// routeSeries reports whether /metrics exports series of route label.
func routeSeries(t *testing.T, e *env, label string) bool {
	t.Helper()
	_, body := e.do("GET", "/metrics", "")
	return strings.Contains(string(body), `edgewamp_gateway_request_duration_seconds_count{route="`+label+`"}`)
}

func stateRoute(call string, auth Auth) Route {
	return Route{Name: "state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: call, Args: []any{"$/path/id"}, Auth: auth}
}

var tempRoute = Route{Name: "temp", Method: "GET", Path: "/devices/{id}/temp", Realm: "realm1", Call: "com.v2", Args: []any{"$/path/id"}, Auth: Auth{Type: "none"}}

// TestRouteReloadAddRemoveChange: a reload's routes apply to the next
// request. Before, they were compiled once, at New: the route added was
// 404, the removed one served, the changed one called its old procedure
// under its old auth, until a restart.
func TestRouteReloadAddRemoveChange(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		keyedOptions(o)
		o.Routes = []Route{stateRoute("com.v1", Auth{Type: "none"})}
	})
	versionCallee(t, e, "com.v1", "com.v2")
	expect := func(what string, st int, body string, wantSt int, want string) {
		t.Helper()
		if st != wantSt || !strings.Contains(body, want) {
			t.Fatalf("%s: %d %s, want %d with %q", what, st, body, wantSt, want)
		}
	}
	st, body := answer(t, e, "GET", "/devices/7/state")
	expect("state before the reloads", st, body, 200, "com.v1:7")
	st, body = answer(t, e, "GET", "/devices/7/temp")
	expect("temp before it is added", st, body, 404, URINotFound)
	if routeSeries(t, e, "temp") {
		t.Fatal("series of route temp before it is added")
	}

	// temp added.
	c := reloadTo(t, e, e.gw.opts.APIKeys, e.gw.opts.SigningKeys, []Route{stateRoute("com.v1", Auth{Type: "none"}), tempRoute})
	if got := fmt.Sprint(c.LogAttrs()...); got != "routes2routes_added1: temproutes_removed0routes_changed0" {
		t.Errorf("the changes of the reload that adds temp: %s", got)
	}
	st, body = answer(t, e, "GET", "/devices/7/temp")
	expect("temp once added", st, body, 200, "com.v2:7")
	st, body = answer(t, e, "GET", "/devices/7/state")
	expect("state after a reload that keeps it", st, body, 200, "com.v1:7")
	if !routeSeries(t, e, "temp") {
		t.Error("no series of route temp once it is added")
	}
	if ops := openAPIOps(t, e); ops["get /devices/{id}/temp"] != "Calls com.v2" {
		t.Errorf("/openapi.json once temp is added: %v", ops)
	}

	// temp removed; state changed: another procedure, and API keys only,
	// carol's alone, a key the same reload adds.
	keys := append([]APIKey{{Name: "carol", Key: carolKey, Realm: "realm1", AuthID: "carol", Role: "user"}}, e.gw.opts.APIKeys...)
	c = reloadTo(t, e, keys, e.gw.opts.SigningKeys, []Route{stateRoute("com.v2", Auth{Type: "apikey", Keys: []string{"carol"}})})
	if got := fmt.Sprint(c.LogAttrs()...); got != "routes1routes_added0routes_removed1: temproutes_changed1: state" {
		t.Errorf("the changes of the reload that removes temp and changes state: %s", got)
	}
	st, body = answer(t, e, "GET", "/devices/7/temp")
	expect("temp once removed", st, body, 404, URINotFound)
	st, body = answer(t, e, "GET", "/devices/7/state")
	expect("state without a key once it needs one", st, body, 401, proto.URIAuthenticationRequired)
	st, body = answer(t, e, "GET", "/devices/7/state", "X-API-Key", bobKey)
	expect("state with a key it does not name", st, body, 401, "the API key is not valid")
	st, body = answer(t, e, "GET", "/devices/7/state", "X-API-Key", carolKey)
	expect("state with carol's key, added by the same reload", st, body, 200, "com.v2:7")
	if routeSeries(t, e, "temp") {
		t.Error("series of route temp after the reload that removed it")
	}
	if !routeSeries(t, e, "state") {
		t.Error("the series of route state went with its change")
	}
	ops := openAPIOps(t, e)
	if _, ok := ops["get /devices/{id}/temp"]; ok || ops["get /devices/{id}/state"] != "Calls com.v2 [apiKey]" {
		t.Errorf("/openapi.json once temp is removed and state changed: %v", ops)
	}
	undeclaredSchemes(t, e)

	// A reload that changes nothing changes nothing.
	c = reloadTo(t, e, keys, e.gw.opts.SigningKeys, []Route{stateRoute("com.v2", Auth{Type: "apikey", Keys: []string{"carol"}})})
	if !c.None() {
		t.Errorf("a reload of the same routes: %v", c.LogAttrs())
	}
	st, body = answer(t, e, "GET", "/devices/8/state", "X-API-Key", carolKey)
	expect("state after a reload that changes nothing", st, body, 200, "com.v2:8")
}

// TestRouteReloadRefused: an update with a bad route is refused whole,
// and the routes, keys and document in use stay. Every check New makes
// is made, the conflicts with the gateway's own endpoints and the mounts
// included, and a route's auth.keys are checked against the update's own
// keys (not the running ones).
func TestRouteReloadRefused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		keyedOptions(o)
		o.Routes = []Route{stateRoute("com.v1", Auth{Type: "any"})}
		o.Mount = map[string]http.Handler{"/oauth/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("mounted")) })}
	})
	versionCallee(t, e, "com.v1", "com.v2")
	withNew := func(rt Route) []Route {
		rt.Realm, rt.Call = orStr(rt.Realm, "realm1"), orStr(rt.Call, "com.v2")
		rt.Method = orStr(rt.Method, "GET")
		return []Route{stateRoute("com.v2", Auth{Type: "any"}), rt}
	}
	before := openAPIOps(t, e)
	for _, c := range []struct {
		what   string
		routes []Route
		keys   []APIKey
		field  string
	}{
		{"a path of the gateway's own", withNew(Route{Name: "m", Path: "/metrics"}), nil, "gateway.routes[1].path"},
		{"a path under /wamp/", withNew(Route{Name: "w", Path: "/wamp/x"}), nil, "gateway.routes[1].path"},
		{"the pattern of a mount", withNew(Route{Name: "o", Path: "/oauth/"}), nil, "gateway.routes[1].path: path /oauth/ is at or below the mount /oauth/"},
		{"a path below a mount", withNew(Route{Name: "tok", Path: "/oauth/token", Method: "POST"}), nil, "gateway.routes[1].path: path /oauth/token is at or below the mount /oauth/"},
		{"a pattern conflicting with another route's", withNew(Route{Name: "c", Path: "/devices/7/{what}"}), nil, "gateway.routes[1].path: pattern"},
		{"method and path twice", withNew(Route{Name: "again", Path: "/devices/{id}/state"}), nil, "gateway.routes[1].path: GET /devices/{id}/state is routed twice"},
		{"a name twice", withNew(Route{Name: "state", Path: "/other"}), nil, "gateway.routes[1].name"},
		{"the name of the gateway's own endpoint", withNew(Route{Name: "healthz", Path: "/h"}), nil, `gateway.routes[1].name: route name "healthz" is the metrics label`},
		{"the name of the catch-all label", withNew(Route{Name: "other", Path: "/o"}), nil, `gateway.routes[1].name: route name "other" is the metrics label`},
		{"the name of a mount's label", withNew(Route{Name: "mount:/oauth/", Path: "/o"}), nil, "gateway.routes[1].name"},
		{"a template pointing nowhere", withNew(Route{Name: "t", Path: "/t", Args: []any{"$/path/nope"}}), nil, "gateway.routes[1].args"},
		{"a method", withNew(Route{Name: "m", Path: "/m", Method: "BREW"}), nil, "gateway.routes[1].method"},
		{"a key the update removes", withNew(Route{Name: "k", Path: "/k", Auth: Auth{Type: "apikey", Keys: []string{"alice"}}}), e.gw.opts.APIKeys[1:], "gateway.routes[1].auth.keys[0]"},
		{"a bad key", withNew(Route{Name: "k", Path: "/k"}), []APIKey{{Name: "short", Key: "short", Realm: "realm1", Role: "user"}}, "gateway.api_keys[0].key"},
	} {
		keys := c.keys
		if keys == nil {
			keys = e.gw.opts.APIKeys
		}
		p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: keys, SigningKeys: e.gw.opts.SigningKeys, Routes: c.routes})
		var fe *FieldError
		if p != nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), c.field) {
			t.Fatalf("%s: Prepare: %v, want an error naming %s", c.what, err, c.field)
		}
		// Nothing changed: the old routes serve, the old keys are taken,
		// the new route (or the good one changed beside it) is not.
		if st, body := answer(t, e, "GET", "/devices/7/state"); st != 200 || !strings.Contains(body, "com.v1:7") {
			t.Fatalf("%s: state after the refusal: %d %s", c.what, st, body)
		}
		if st, body := answer(t, e, "GET", "/devices/7/state", "X-API-Key", aliceKey); st != 200 {
			t.Fatalf("%s: alice's key after the refusal: %d %s", c.what, st, body)
		}
		if st, body := answer(t, e, "GET", "/oauth/x"); st != 200 || body != "mounted" {
			t.Fatalf("%s: the mount after the refusal: %d %s", c.what, st, body)
		}
		if after := openAPIOps(t, e); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s: /openapi.json changed: %v, was %v", c.what, after, before)
		}
	}
	// The same update without the bad route is taken.
	reloadTo(t, e, e.gw.opts.APIKeys, e.gw.opts.SigningKeys, []Route{stateRoute("com.v2", Auth{Type: "any"})})
	if st, body := answer(t, e, "GET", "/devices/7/state"); st != 200 || !strings.Contains(body, "com.v2:7") {
		t.Fatalf("state after a good reload: %d %s", st, body)
	}
}

// TestRouteReloadNoMix: requests racing reloads that swap two
// configurations in which a route's auth.keys and the key they name are
// renamed together: A names key k-a, B names the same key k-b, and the
// route calls com.a in A, com.b in B. A request routed by one and
// authenticated by the other would be refused (401); every request is
// answered by one of them, and one made wholly between a reload's return
// and the next reload's start by that reload's. Paths only one of them
// routes are answered as that one says.
func TestRouteReloadNoMix(t *testing.T) {
	laneFree(t)
	const key = "shared-key-0123456789"
	cfg := func(gen int) ([]APIKey, []Route) {
		v := "ab"[gen%2 : gen%2+1]
		return []APIKey{{Name: "k-" + v, Key: key, Realm: "realm1", AuthID: "dev", Role: "user"}},
			[]Route{
				{Name: "r", Method: "POST", Path: "/x", Realm: "realm1", Call: "com." + v, Auth: Auth{Type: "apikey", Keys: []string{"k-" + v}}},
				{Name: "only-" + v, Method: "GET", Path: "/only-" + v, Realm: "realm1", Call: "com." + v, Auth: Auth{Type: "apikey", Keys: []string{"k-" + v}}},
			}
	}
	e := newEnv(t, func(o *Options) {
		o.APIKeys, o.Routes = cfg(0)
		o.Limits.MaxInFlightPerIdentity = 4096
		o.Limits.AuthFailures = 1 << 20
	})
	versionCallee(t, e, "com.a", "com.b")
	var applying, applied atomic.Int64 // the reload started last, and returned last
	var done, checked, mixed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				method, path := "POST", "/x"
				if n%3 == 2 {
					method, path = "GET", "/only-"+"ab"[i%2:i%2+1]
				}
				b1 := applied.Load()
				a1 := applying.Load()
				st, body := answer(t, e, method, path, "X-API-Key", key)
				a2 := applying.Load()
				done.Add(1)
				var v string // the configuration that answered
				switch {
				case st == 200 && strings.Contains(body, "com.a:"):
					v = "a"
				case st == 200 && strings.Contains(body, "com.b:"):
					v = "b"
				case st == 404 && path == "/only-a":
					v = "b"
				case st == 404 && path == "/only-b":
					v = "a"
				default:
					mixed.Add(1)
					t.Errorf("%s %s during the reloads: %d %s", method, path, st, body)
					return
				}
				if a1 == b1 && a2 == a1 {
					checked.Add(1)
					if want := "ab"[b1%2 : b1%2+1]; v != want {
						t.Errorf("%s %s, made wholly after reload %d returned, was answered by configuration %s, not %s", method, path, b1, v, want)
						return
					}
				}
			}
		}()
	}
	const reloads = 300
	for gen := 1; gen <= reloads && !t.Failed(); gen++ {
		keys, routes := cfg(gen)
		p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: keys, Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		applying.Store(int64(gen))
		e.gw.Apply(p)
		applied.Store(int64(gen))
		// Some requests between this reload and the next.
		for from := done.Load(); done.Load() < from+3 && !t.Failed(); {
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d reloads; %d requests, %d of them wholly between two reloads", reloads, done.Load(), checked.Load())
	if checked.Load() == 0 {
		t.Error("no request ran wholly between two reloads")
	}
}

// TestRouteReloadSSE: the streamed calls of routes at a reload. Before,
// the routes did not change (their streams went on, whatever the file
// said). Now each is judged by the route of its label in the new table,
// as a request made now with its credential would be: a route the
// reload removes, or whose procedure it changes, keeps its streams (as
// running requests finish); one whose auth.keys, auth type, roles or
// scopes its credential no longer passes, or that now needs a credential
// the stream came without, ends its streams with a problem event, the
// call canceled at the router (the callee interrupted).
func TestRouteReloadSSE(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	tick := func(name string, auth Auth) Route {
		return Route{Name: name, Method: "POST", Path: "/t/" + name, Realm: "realm1", Call: "com.tick", Auth: auth, Timeout: 2 * time.Minute}
	}
	bobs := Auth{Type: "any", Keys: []string{"bob", "dev"}}
	before := []Route{
		tick("keep", bobs),
		tick("removed", bobs),
		tick("recalled", bobs),
		tick("rekeyed", Auth{Type: "any", Keys: []string{"bob"}}),
		tick("retyped", Auth{Type: "any"}),
		tick("reroled", Auth{Type: "apikey"}),
		tick("anon", Auth{Type: "none"}),
		tick("scoped", Auth{Type: "bearer", Scopes: []string{"ticks.read"}}),
	}
	e := newEnv(t, func(o *Options) {
		keyedOptions(o)
		o.Routes = before
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
	})
	interrupted := tickCallee(t, e, "realm1", "com.tick")
	tok := iss.token("tess", "realm1", "user", "ticks.read", time.Hour, nil)
	var leaves []func()
	open := func(name string, hdr ...string) *sseReader {
		rd, leave := openTicks(t, e, "/t/"+name, hdr...)
		leaves = append(leaves, leave)
		return rd
	}
	streams := map[string]*sseReader{}
	for _, rt := range before {
		switch rt.Name {
		case "anon":
			streams[rt.Name] = open(rt.Name)
		case "scoped":
			streams[rt.Name] = open(rt.Name, "Authorization", "Bearer "+tok)
		default:
			streams[rt.Name] = open(rt.Name, "X-API-Key", bobKey)
		}
	}
	recalled := tick("recalled", bobs)
	recalled.Call = "com.tock"
	keys := append([]APIKey{{Name: "carol", Key: carolKey, Realm: "realm1", AuthID: "carol", Role: "user"}}, e.gw.opts.APIKeys...)
	c := reloadTo(t, e, keys, e.gw.opts.SigningKeys, []Route{
		tick("keep", bobs),
		recalled,
		tick("rekeyed", Auth{Type: "any", Keys: []string{"dev", "carol"}}),
		tick("retyped", Auth{Type: "bearer"}),
		tick("reroled", Auth{Type: "apikey", Roles: []string{"admin"}}),
		tick("anon", Auth{Type: "apikey"}),
		tick("scoped", Auth{Type: "bearer", Scopes: []string{"ticks.admin"}}),
		tick("carols", Auth{Type: "apikey", Keys: []string{"carol"}}),
	})
	if got := fmt.Sprint(c.LogAttrs()...); got != "routes8routes_added1: carolsroutes_removed1: removedroutes_changed6: anon, recalled, rekeyed, reroled, retyped, scoped" {
		t.Errorf("the reload's changes: %s", got)
	}
	for _, end := range []struct {
		name string
		want ending
	}{
		{"rekeyed", ending{401, proto.URIAuthenticationFailed, "the API key is no longer accepted here (the route's auth.keys no longer name it)"}},
		{"retyped", ending{401, proto.URIAuthenticationRequired, "the route no longer takes API keys"}},
		{"reroled", ending{403, proto.URINotAuthorized, "none of the roles the route now requires: admin"}},
		{"anon", ending{401, proto.URIAuthenticationRequired, "the route now needs credentials"}},
		{"scoped", ending{403, proto.URINotAuthorized, `the token lacks scope "ticks.admin"`}},
	} {
		expectEnded(t, streams[end.name], "the stream of route "+end.name, end.want)
		waitInterrupted(t, interrupted, "the stream of route "+end.name)
	}
	for _, name := range []string{"keep", "removed", "recalled"} {
		for range 3 {
			nextEvent(t, streams[name], "progress", "the stream of route "+name+" after the reload")
		}
	}
	// The route added takes carol's key, added by the same reload; the
	// removed one takes no new stream.
	carols, leave := openTicks(t, e, "/t/carols", "X-API-Key", carolKey)
	nextEvent(t, carols, "progress", "a stream on the route added")
	r, body := e.do("POST", "/t/removed", `{}`, "X-API-Key", bobKey, "Accept", "text/event-stream")
	expectProblem(t, r, body, 404, URINotFound)
	if n := metricValue(t, e, "edgewamp_gateway_sse_withdrawn_total"); n != "5" {
		t.Errorf("edgewamp_gateway_sse_withdrawn_total = %q, want 5", n)
	}
	leave()
	for _, leave := range leaves {
		leave()
	}
	settled(t, e)
}

// TestRouteReloadStorm: reloads back to back (a SIGHUP every few ms, and
// faster), each with routes of names of its own, some refused, while
// requests are served and a stream runs on a route every reload keeps.
// Nothing piles up: the series exported are the last configuration's, no
// goroutine is left, the requests are all served, the stream goes on.
func TestRouteReloadStorm(t *testing.T) {
	laneFree(t)
	stable := Route{Name: "stable", Method: "GET", Path: "/stable/{id}", Realm: "realm1", Call: "com.v1", Args: []any{"$/path/id"}, Auth: Auth{Type: "none"}}
	ticks := Route{Name: "ticks", Method: "POST", Path: "/ticks", Realm: "realm1", Call: "com.tick", Auth: Auth{Type: "any", Keys: []string{"bob"}}, Timeout: 2 * time.Minute}
	gen := func(i int) []Route {
		return []Route{stable, ticks,
			{Name: fmt.Sprintf("gen-%d-a", i), Method: "GET", Path: fmt.Sprintf("/g/%d/a", i), Realm: "realm1", Call: "com.v1"},
			{Name: fmt.Sprintf("gen-%d-b", i), Method: "POST", Path: fmt.Sprintf("/g/%d/{b}", i), Realm: "realm1", Call: "com.v1", Auth: Auth{Type: "apikey", Keys: []string{"alice"}}},
		}
	}
	e := newEnv(t, func(o *Options) {
		keyedOptions(o)
		o.Routes = gen(0)
	})
	versionCallee(t, e, "com.v1")
	tickCallee(t, e, "realm1", "com.tick")
	if st, body := answer(t, e, "GET", "/stable/1"); st != 200 {
		t.Fatalf("stable: %d %s", st, body)
	}
	e.hc.CloseIdleConnections()
	settled(t, e)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap, baseG := ms.HeapAlloc, runtime.NumGoroutine()

	stream, leave := openTicks(t, e, "/ticks", "X-API-Key", bobKey)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if st, body := answer(t, e, "GET", "/stable/2"); st != 200 || !strings.Contains(body, "com.v1:2") {
					t.Errorf("a request during the storm: %d %s", st, body)
					return
				}
				served.Add(1)
			}
		}()
	}
	const reloads = 500
	start := time.Now()
	refused := 0
	for i := 1; i <= reloads && !t.Failed(); i++ {
		routes := gen(i)
		if i%50 == 0 {
			// A bad one now and then: refused, and it leaves nothing.
			bad := append(routes, Route{Name: fmt.Sprintf("gen-%d-bad", i), Method: "GET", Path: "/metrics", Realm: "realm1", Call: "com.v1"})
			if _, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: e.gw.opts.APIKeys, SigningKeys: e.gw.opts.SigningKeys, Routes: bad}); err == nil {
				t.Fatal("a route at /metrics was taken")
			}
			refused++
		}
		reloadTo(t, e, e.gw.opts.APIKeys, e.gw.opts.SigningKeys, routes)
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	for range 3 {
		nextEvent(t, stream, "progress", "the stream on a route every reload kept")
	}
	// The routes of the last reload serve; the series exported are theirs
	// and the gateway's own.
	if st, body := answer(t, e, "GET", fmt.Sprintf("/g/%d/a", reloads)); st != 200 {
		t.Fatalf("the last reload's route: %d %s", st, body)
	}
	if st, body := answer(t, e, "GET", fmt.Sprintf("/g/%d/a", reloads-1)); st != 404 {
		t.Fatalf("the route of the reload before: %d %s", st, body)
	}
	_, metrics := e.do("GET", "/metrics", "")
	if n := strings.Count(string(metrics), `edgewamp_gateway_request_duration_seconds_count{route="gen-`); n != 2 {
		t.Errorf("%d labels of generated routes exported after %d reloads, want the last reload's 2", n, reloads)
	}
	e.gw.metrics.mu.Lock()
	labels, fixed := len(e.gw.metrics.routes), len(e.gw.metrics.fixed)
	e.gw.metrics.mu.Unlock()
	if labels > fixed+4 {
		t.Errorf("the metrics hold %d labels, %d of them the gateway's own: the reloads left some behind", labels, fixed)
	}
	leave()
	e.hc.CloseIdleConnections()
	settled(t, e)
	waitFor(t, "the goroutines of the storm to end", func() bool {
		e.hc.CloseIdleConnections()
		return runtime.NumGoroutine() <= baseG+2
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d reloads (%d refused besides) in %v while %d requests were served; heap %d KiB before, %d KiB after; goroutines %d before, %d after",
		reloads, refused, took.Round(time.Millisecond), served.Load(), baseHeap>>10, ms.HeapAlloc>>10, baseG, runtime.NumGoroutine())
	if served.Load() == 0 {
		t.Error("no request was served during the storm")
	}
}

// TestRouteReloadTenThousandRoutes: a reload of 10,000 routes is compiled
// and bound off the request path and swapped in one store: requests go
// on being served while it runs. It prints how long Prepare and Apply
// take, and the slowest request meanwhile (no assertion on times).
func TestRouteReloadTenThousandRoutes(t *testing.T) {
	n := 10000
	if raceEnabled {
		n = 2000 // 14 s of make test for 10,000, twice (both gateway configurations); the timings it prints are without -race
	}
	mk := func(gen int) []Route {
		call := "com.v" + fmt.Sprint(gen%2+1)
		rs := make([]Route, 0, n+1)
		for i := range n {
			rs = append(rs, Route{Name: fmt.Sprintf("r%d", i), Method: "GET", Path: fmt.Sprintf("/r/%d/{id}", i), Realm: "realm1", Call: call,
				Args: []any{"$/path/id"}, Auth: Auth{Type: "none"}})
		}
		return append(rs, Route{Name: "probe", Method: "POST", Path: "/probe", Realm: "realm1", Call: "com.v1", Auth: Auth{Type: "none"}})
	}
	e := newEnv(t, func(o *Options) { o.Routes = mk(0) })
	versionCallee(t, e, "com.v1", "com.v2")
	measure := func(during func()) (count int, slowest time.Duration) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				path := "/probe"
				if i%2 == 1 {
					path = "/wamp/realm1/call/com.v1"
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					st, body := answer(t, e, "POST", path)
					took := time.Since(start)
					if st != 200 {
						t.Errorf("%s during the reloads: %d %s", path, st, body)
						return
					}
					mu.Lock()
					count++
					slowest = max(slowest, took)
					mu.Unlock()
				}
			}()
		}
		during()
		close(stop)
		wg.Wait()
		return count, slowest
	}
	baseN, baseSlow := measure(func() { time.Sleep(time.Second) })
	var prep, apply []time.Duration
	dur := time.Now()
	reloadN, reloadSlow := measure(func() {
		for gen := 1; gen <= 3; gen++ {
			start := time.Now()
			p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, Routes: mk(gen)})
			if err != nil {
				t.Error(err)
				return
			}
			prep = append(prep, time.Since(start))
			start = time.Now()
			e.gw.Apply(p)
			apply = append(apply, time.Since(start))
			want := fmt.Sprintf("com.v%d:x", gen%2+1)
			if st, body := answer(t, e, "GET", fmt.Sprintf("/r/%d/x", n-1)); st != 200 || !strings.Contains(body, want) {
				t.Errorf("the last route after reload %d: %d %s, want %s", gen, st, body, want)
				return
			}
		}
	})
	during := time.Since(dur)
	t.Logf("%d routes: Prepare took %v, Apply %v (3 reloads, each changing every route's procedure); requests: %d in 1 s before, slowest %v; %d during the reloads (%v), slowest %v",
		n, prep, apply, baseN, baseSlow, reloadN, during.Round(time.Millisecond), reloadSlow)
	if ops := len(openAPIOps(t, e)); ops < n {
		t.Errorf("/openapi.json has %d operations, want the %d routes' and more", ops, n)
	}
}

// ownLabel knows every label the gateway gives its own endpoints, so that
// no route can be named like one of them (and share its series).
func TestOwnLabelsRefusedAsRouteNames(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Mount = map[string]http.Handler{"/oauth/": http.NotFoundHandler()}
	})
	e.gw.metrics.mu.Lock()
	defer e.gw.metrics.mu.Unlock()
	if len(e.gw.metrics.fixed) < 8 {
		t.Fatalf("only %d labels of the gateway's own: %v", len(e.gw.metrics.fixed), e.gw.metrics.fixed)
	}
	for name := range e.gw.metrics.fixed {
		if !ownLabel(name) {
			t.Errorf("the gateway's own label %q may name a route", name)
		}
	}
}
