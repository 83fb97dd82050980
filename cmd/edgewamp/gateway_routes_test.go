package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// routesYAML is keysYAML's configuration (realm1, API keys name → key)
// with the gateway's routes (YAML flow mappings, one a line), the gateway
// listening or off, and a realm2 when asked.
func routesYAML(apiKeys [][2]string, listen string, realm2 bool, routes ...string) string {
	yml := keysYAML(apiKeys, "")
	if listen != "" {
		yml = strings.Replace(yml, "  listen: 127.0.0.1:0\n", "  listen: "+listen+"\n", 1)
	}
	if realm2 {
		yml = strings.Replace(yml, "  - name: realm1\n", "  - name: realm1\n  - name: realm2\n", 1)
	}
	yml += "  routes:\n"
	for _, r := range routes {
		yml += "    - " + r + "\n"
	}
	return yml
}

// TestGatewayRoutesReloadedOnSIGHUP: the binary and SIGHUP. The gateway's
// routes changed only with a restart, which dropped every client. Now a
// reload installs the file's routes: a route added serves, a removed one
// is 404, a changed one calls its new procedure under its new auth (naming
// a key the same reload adds), /openapi.json follows, and the log line
// counts and names the routes added, removed and changed. A streamed call
// on a route whose auth.keys no longer name its key ends (its callee
// interrupted); one on a removed route goes on. A file with a bad route
// is refused whole, before the router takes its realms, with the field
// named, and the routes in use stay.
func TestGatewayRoutesReloadedOnSIGHUP(t *testing.T) {
	const alice, bob, carol = "alice-key-0123456789", "bob-key-0123456789ab", "carol-key-0123456789"
	state := func(call, auth string) string {
		return `{name: state, method: GET, path: "/devices/{id}/state", realm: realm1, call: ` + call + `, args: ["$/path/id"], auth: ` + auth + `}`
	}
	ticks := func(name, keys string) string {
		return `{name: ` + name + `, method: POST, path: /` + name + `, realm: realm1, call: com.example.tick, timeout: 2m, auth: {type: any, keys: [` + keys + `]}}`
	}
	temp := `{name: temp, method: GET, path: "/devices/{id}/temp", realm: realm1, call: com.example.v2, args: ["$/path/id"], auth: {type: none}}`
	two := [][2]string{{"alice", alice}, {"bob", bob}}
	g := startReloadedGateway(t, routesYAML(two, "", false, state("com.example.v1", "{type: none}"), ticks("ticks", "bob"), ticks("gone", "bob")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitInterrupted := tickCallee(ctx, t, g.addr)
	callee, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	for _, proc := range []string{"com.example.v1", "com.example.v2"} {
		if _, err := callee.Register(ctx, proc, func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{fmt.Sprint(append([]any{proc, ":"}, inv.Args...)...)}}, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what, path string, wantSt int, want string, hdr ...string) {
		t.Helper()
		r, body := g.do(t, "GET", path, "", hdr...)
		if r.StatusCode != wantSt || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s, want %d with %q", what, r.StatusCode, body, wantSt, want)
		}
	}
	openAPI := func() string {
		t.Helper()
		_, body := g.do(t, "GET", "/openapi.json", "")
		return string(body)
	}
	open := func(path, key string) *bufio.Reader {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", g.base+path, strings.NewReader(`{}`))
		req.Header.Set("X-API-Key", key)
		return openSSE(t, req, true)
	}

	expect("state before the reload", "/devices/7/state", 200, "com.example.v1:7")
	expect("temp before the reload", "/devices/7/temp", 404, "edgewamp.error.not_found")
	if strings.Contains(openAPI(), "/devices/{id}/temp") {
		t.Fatal("/openapi.json has temp before it is added")
	}
	onTicks, onGone := open("/ticks", bob), open("/gone", bob)

	// temp added, gone removed, state given another procedure and API
	// keys only (carol's, added by the same reload), ticks's keys changed.
	g.reload(routesYAML([][2]string{{"alice", alice}, {"bob", bob}, {"carol", carol}}, "", false,
		state("com.example.v2", "{type: apikey, keys: [carol]}"), ticks("ticks", "alice"), temp))
	g.waitLog(`routes=3 routes_added="1: temp" routes_removed="1: gone" routes_changed="2: state, ticks"`, 1)
	expect("temp once added", "/devices/7/temp", 200, "com.example.v2:7")
	expect("state without a key once it needs carol's", "/devices/7/state", 401, "wamp.error.authentication_required")
	expect("state with bob's key", "/devices/7/state", 401, "the API key is not valid", "X-API-Key", bob)
	expect("state with carol's key", "/devices/7/state", 200, "com.example.v2:7", "X-API-Key", carol)
	if r, body := g.do(t, "POST", "/gone", `{}`, "X-API-Key", bob); r.StatusCode != 404 {
		t.Fatalf("the removed route: %d %s", r.StatusCode, body)
	}
	if doc := openAPI(); !strings.Contains(doc, "/devices/{id}/temp") || strings.Contains(doc, `"/gone"`) || !strings.Contains(doc, "Calls com.example.v2") {
		t.Fatalf("/openapi.json after the reload: %s", doc)
	}
	sseEnds(t, onTicks, "the API key is no longer accepted here", "the streamed call on a route whose auth.keys no longer name its key")
	waitInterrupted("the streamed call on a route whose auth.keys no longer name its key")
	sseUntil(t, onGone, "event: progress", "the streamed call on the removed route")
	sseUntil(t, onGone, "event: progress", "the streamed call on the removed route")

	// A route at a path of the gateway's own: refused (loadConfig sees it).
	good := routesYAML([][2]string{{"alice", alice}, {"bob", bob}, {"carol", carol}}, "", false,
		state("com.example.v2", "{type: apikey, keys: [carol]}"), ticks("ticks", "alice"), temp)
	g.reloadRefused(strings.Replace(good, "path: \"/devices/{id}/temp\"", "path: /metrics", 1))
	// The same in a file that turns the gateway off (loadConfig does not
	// check the gateway then; the running gateway would take the file's
	// routes all the same): refused by the gateway's own check, before
	// the router takes the file's new realm.
	bad := routesYAML([][2]string{{"alice", alice}, {"bob", bob}, {"carol", carol}}, "off", true,
		state("com.example.v2", "{type: apikey, keys: [carol]}"), ticks("ticks", "alice"), strings.Replace(temp, "\"/devices/{id}/temp\"", "/metrics", 1))
	g.reloadRefused(bad)
	g.waitLog("gateway.routes[2].path: path /metrics is the gateway's own", 2)
	if s, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm2"}); err == nil {
		s.Close()
		t.Fatal("realm2 of a refused reload was installed")
	}
	expect("state after the refused reloads", "/devices/7/state", 200, "com.example.v2:7", "X-API-Key", carol)
	expect("temp after the refused reloads", "/devices/8/temp", 200, "com.example.v2:8")
	sseUntil(t, onGone, "event: progress", "the streamed call on the removed route, after the refused reloads")
	if !strings.Contains(g.logs(), "the gateway's API and signing keys, routes") {
		t.Fatalf("the reload's log line does not say that the routes apply:\n%s", g.logs())
	}
}
