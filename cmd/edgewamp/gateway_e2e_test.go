package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// End-to-end tests of the HTTP gateway: the built binary, real WAMP
// callees and subscribers (Autobahn|Python, gateway_peer.py), a real SSE
// consumer (the npm eventsource package, sse_consumer.js), net/http and
// curl as HTTP clients, an httptest upstream and webhook target.

// gwRouter is a running edgewamp with its gateway.
type gwRouter struct {
	*router
	base string // http://gateway
	hc   *http.Client
}

func (g *gwRouter) do(t *testing.T, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type problemJSON struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Error  string `json:"error"`
	Args   []any  `json:"args"`
	Kwargs map[string]any
}

func expectProblem(t *testing.T, resp *http.Response, body []byte, status int, uri string) problemJSON {
	t.Helper()
	var p problemJSON
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil ||
		p.Status != status || p.Error != uri || p.Type != "about:blank" {
		t.Fatalf("got %d %s %s, want a %d problem with %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, status, uri)
	}
	return p
}

// startGateway runs the binary with the default configuration and the
// gateway on a free port.
func startGatewayRouter(t *testing.T, args ...string) *gwRouter {
	t.Helper()
	r := startRouter(t, args...)
	r.mu.Lock()
	gw := r.gw
	r.mu.Unlock()
	if gw == "" {
		t.Fatalf("no gateway listening line\n%s", r.logs())
	}
	return &gwRouter{router: r, base: "http://" + gw, hc: &http.Client{Timeout: 30 * time.Second}}
}

func startPyPeer(t *testing.T, r *router, realm, prefix string) *interopRun {
	t.Helper()
	interopNeeds(t, "python")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	run := &interopRun{p: interopProc{label: "gateway_peer.py " + realm, argv: []string{pythonBin(), "gateway_peer.py",
		"--url", "ws://" + r.addr + "/ws", "--serializer", "msgpack", "--realm", realm, "--prefix", prefix}}}
	if err := run.start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.ready:
	case <-run.exited:
		t.Fatalf("gateway_peer.py exited: %v\n%s", run.err, run.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("gateway_peer.py not ready")
	}
	return run
}

// peerEvents returns the events a peer printed ({"event": ...} lines).
func peerEvents(run *interopRun) []map[string]any {
	run.mu.Lock()
	defer run.mu.Unlock()
	var out []map[string]any
	for _, l := range run.other {
		var m struct {
			Event map[string]any `json:"event"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Event != nil {
			out = append(out, m.Event)
		}
	}
	return out
}

// stopPeers publishes interop.stop and waits for the peers to exit.
func stopPeers(t *testing.T, r *router, realms []string, runs ...*interopRun) {
	for _, realm := range realms {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := client.Dial(ctx, client.Config{URL: "ws://" + r.addr + "/ws", Realm: realm})
		if err == nil {
			s.Publish(ctx, "interop.stop", nil, nil, &client.PublishOptions{Acknowledge: true})
			s.Close()
		}
		cancel()
	}
	for _, run := range runs {
		select {
		case <-run.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop", run.p.label)
		}
	}
}

// sseConsumer runs sse_consumer.js and returns its events once it is done.
type sseOut struct {
	Type, ID, Data string
}

func runSSEConsumer(t *testing.T, args []string, whenReady func()) []sseOut {
	t.Helper()
	interopNeeds(t, "node")
	if _, err := os.Stat(filepath.Join(interopDir, "node_modules", "eventsource", "package.json")); err != nil {
		interopMissing(t, "testdata/interop/node_modules/eventsource is missing (npm ci there, or .ci/setup)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"sse_consumer.js"}, args...)...)
	cmd.Dir = interopDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var evs []sseOut
	done := false
	detail := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var m struct {
			Ready  bool   `json:"ready"`
			Done   bool   `json:"done"`
			Failed int    `json:"failed"`
			Detail string `json:"detail"`
			SSE    *struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Data string `json:"data"`
			} `json:"sse"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case m.Ready:
			if whenReady != nil {
				go whenReady()
				whenReady = nil
			}
		case m.SSE != nil:
			evs = append(evs, sseOut{m.SSE.Type, m.SSE.ID, m.SSE.Data})
		case m.Done:
			done = m.Failed == 0
			detail = m.Detail
		}
	}
	cmd.Wait()
	if !done {
		t.Fatalf("sse_consumer.js %v failed: %s; events %+v\nstderr: %s", args, detail, evs, stderr.String())
	}
	return evs
}

func interopMissing(t *testing.T, why string) {
	if os.Getenv("EDGEWAMP_REQUIRE_INTEROP") != "" {
		t.Fatalf("interop client not installed and EDGEWAMP_REQUIRE_INTEROP is set: %s", why)
	}
	t.Skip(why)
}

// jwks is a signing key and its public key set, written to a file.
type jwks struct {
	priv jwk.Key
	file string
}

func newJWKS(t *testing.T) *jwks {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	jwk.AssignKeyID(k)
	k.Set(jwk.AlgorithmKey, jwa.EdDSA)
	pub, _ := k.PublicKey()
	set := jwk.NewSet()
	set.AddKey(pub)
	b, _ := json.Marshal(set)
	f := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &jwks{priv: k, file: f}
}

func (j *jwks) token(t *testing.T, sub, realm, role, scope string) string {
	tok, err := jwt.NewBuilder().Issuer("https://auth.test").Subject(sub).Audience([]string{"wamp:" + realm}).
		IssuedAt(time.Now()).Expiration(time.Now().Add(5*time.Minute)).Claim("authrole", role).Claim("scope", scope).Build()
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA, j.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

// gatewayConfig is the configuration of the end-to-end test.
const gatewayConfigYAML = `
listeners: [{address: 127.0.0.1:0}]
realms:
  - name: realm1
    anonymous: true
  - name: plant
    security: true
    anonymous: true
    anonymous_role: device
    roles:
      - name: device
        permissions: [{uri: com.plant., match: prefix, allow: [register, subscribe, publish, call]}, {uri: interop.stop, allow: [subscribe, publish]}]
      - name: operator
        http_bridge: true
        permissions: [{uri: com.plant., match: prefix, allow: [call, publish, subscribe], disclose: [caller]}]
      - name: auditor
        http_bridge: true
        permissions: [{uri: com.plant.whoami, allow: [call], disclose: [caller]}]
      - name: viewer
        permissions: [{uri: com.plant., match: prefix, allow: [call]}]
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: %[1]s, issuer: "https://auth.test"}
  api_keys:
    - {name: ops, key: ops-key-0123456789abcdef, realm: plant, authid: ops-bot, role: operator}
    - {name: audit, key: audit-key-0123456789abcd, realm: plant, authid: auditor-1, role: auditor}
    - {name: view, key: view-key-0123456789abcde, realm: plant, authid: v-1, role: viewer}
  signing_keys:
    - {key: dev-1, secret: dev1-secret-0123456789, realm: plant, authid: dev-1, role: operator}
  cors: {allowed_origins: ["https://app.example"]}
  limits: {max_body: 64KiB, body_timeout: 2s}
  routes:
    - {name: add, method: GET, path: "/calc/add/{a}/{b}", realm: realm1, call: com.example.add,
       args: ["$/path/a|int", "$/path/b|int"], response: {body: "$/args/0"}}
    - {name: echo, method: POST, path: "/echo/{id}", realm: realm1, call: com.example.echo,
       args: ["$/path/id", "$/body/value"], kwargs: {q: "$/query/q?", h: "$/headers/x-h?"},
       response: {body: "$/kwargs", status: 201}}
    - {name: news, method: POST, path: /news, realm: realm1, publish: com.example.news, args: ["$/body/text"], acknowledge: true}
    - {name: plant-whoami, method: GET, path: /plant/whoami, realm: plant, call: com.plant.whoami,
       auth: {type: bearer, scopes: [plant.read]}, response: {body: "$/kwargs"}}
    - {name: plant-ingest, method: POST, path: /plant/ingest, realm: plant, publish: com.plant.reading, args: ["$/body"], auth: {type: signed}}
  callees:
    - {realm: realm1, procedure: com.example.weather, url: "%[2]s/weather", timeout: 2s}
  webhooks:
    - {name: alerts, realm: realm1, topic: com.example.alert, url: "%[2]s/hook", retries: 2, backoff: 50ms}
`

// TestGatewayE2E: everything the gateway does, over real HTTP against the
// built binary with real WAMP peers.
func TestGatewayE2E(t *testing.T) {
	interopNeeds(t, "python", "node")
	keys := newJWKS(t)
	hooks := make(chan map[string]any, 16)
	var weatherReq sync.Map
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/weather":
			weatherReq.Store("last", string(body))
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"temp":21,"unit":"C"}`))
		case "/hook":
			var doc map[string]any
			json.Unmarshal(body, &doc)
			hooks <- doc
		}
	}))
	defer up.Close()
	cfgFile := filepath.Join(t.TempDir(), "edgewamp.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(gatewayConfigYAML, keys.file, up.URL)), 0o600)
	if out, err := exec.Command(binPath, "check-config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	g := startGatewayRouter(t, "-config", cfgFile)
	peer := startPyPeer(t, g.router, "realm1", "com.example.")
	plant := startPyPeer(t, g.router, "plant", "com.plant.")
	defer stopPeers(t, g.router, []string{"realm1", "plant"}, peer, plant)

	t.Run("bridge call", func(t *testing.T) {
		r, body := g.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[2,3]}`)
		if r.StatusCode != 200 || string(body) != `{"args":[5],"kwargs":{}}` {
			t.Fatalf("%d %s", r.StatusCode, body)
		}
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.echo", `{"args":["ü",{"n":[1,2]}],"kwargs":{"k":true}}`)
		if r.StatusCode != 200 || string(body) != `{"args":["ü",{"n":[1,2]}],"kwargs":{"k":true}}` {
			t.Fatalf("echo through MsgPack: %d %s", r.StatusCode, body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		r, body := g.do(t, "POST", "/wamp/realm1/call/com.example.nothing", `{}`)
		expectProblem(t, r, body, 404, proto.URINoSuchProcedure)
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.fail", `{}`)
		p := expectProblem(t, r, body, 502, "com.example.out_of_stock")
		if p.Detail != "no more widgets" || p.Kwargs["sku"] != "w-1" {
			t.Fatalf("application error %s", body)
		}
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.invalid", `{}`)
		expectProblem(t, r, body, 400, proto.URIInvalidArgument)
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.slow", `{"args":[5],"options":{"timeout":200}}`)
		expectProblem(t, r, body, 504, proto.URITimeout)
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[1,`)
		expectProblem(t, r, body, 400, proto.URIInvalidArgument)
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":["`+strings.Repeat("x", 70000)+`"]}`)
		expectProblem(t, r, body, 413, proto.URIPayloadSizeExceeded)
		r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[1,2]}`, "Content-Type", "text/plain")
		expectProblem(t, r, body, 415, "edgewamp.error.unsupported_media_type")
		r, body = g.do(t, "GET", "/wamp/realm1/call/com.example.add", "")
		expectProblem(t, r, body, 405, "edgewamp.error.method_not_allowed")
		r, body = g.do(t, "GET", "/plant/whoami", "")
		expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("routes", func(t *testing.T) {
		r, body := g.do(t, "GET", "/calc/add/2/40", "")
		if r.StatusCode != 200 || string(body) != "42" {
			t.Fatalf("add route: %d %s", r.StatusCode, body)
		}
		r, body = g.do(t, "POST", "/echo/7?q=x", `{"value":{"a":1}}`, "X-H", "hv")
		if r.StatusCode != 201 || string(body) != `{"h":"hv","q":"x"}` {
			t.Fatalf("echo route: %d %s", r.StatusCode, body)
		}
		r, body = g.do(t, "GET", "/calc/add/2/x", "")
		expectProblem(t, r, body, 400, proto.URIInvalidArgument)
	})
	t.Run("RBAC", func(t *testing.T) {
		// Anonymous on plant is role device, which is not granted the bridge.
		r, body := g.do(t, "POST", "/wamp/plant/call/com.plant.add", `{"args":[1,2]}`)
		expectProblem(t, r, body, 403, proto.URINotAuthorized)
		r, body = g.do(t, "POST", "/wamp/plant/call/com.plant.add", `{"args":[1,2]}`, "X-API-Key", "view-key-0123456789abcde")
		expectProblem(t, r, body, 403, proto.URINotAuthorized) // viewer: no bridge
		r, body = g.do(t, "POST", "/wamp/plant/call/com.plant.add", `{"args":[1,2]}`, "X-API-Key", "audit-key-0123456789abcd")
		p := expectProblem(t, r, body, 403, proto.URINotAuthorized) // auditor: bridge, but RBAC denies the call
		if !strings.Contains(p.Detail, "not authorized to call") {
			t.Fatalf("router's denial %q", p.Detail)
		}
		r, body = g.do(t, "POST", "/wamp/plant/call/com.plant.whoami", `{}`, "X-API-Key", "audit-key-0123456789abcd")
		if r.StatusCode != 200 || !strings.Contains(string(body), `"authid":"auditor-1"`) || !strings.Contains(string(body), `"authrole":"auditor"`) {
			t.Fatalf("auditor whoami: %d %s", r.StatusCode, body)
		}
		r, body = g.do(t, "POST", "/wamp/plant/call/com.plant.add", `{"args":[1,2]}`, "X-API-Key", "ops-key-0123456789abcdef")
		if r.StatusCode != 200 || string(body) != `{"args":[3],"kwargs":{}}` {
			t.Fatalf("operator call: %d %s", r.StatusCode, body)
		}
	})
	t.Run("bearer", func(t *testing.T) {
		tok := keys.token(t, "alice", "plant", "operator", "plant.read")
		r, body := g.do(t, "GET", "/plant/whoami", "", "Authorization", "Bearer "+tok)
		if r.StatusCode != 200 || string(body) != `{"authid":"alice","authrole":"operator"}` {
			t.Fatalf("bearer route: %d %s", r.StatusCode, body)
		}
		tok = keys.token(t, "alice", "plant", "operator", "other")
		r, body = g.do(t, "GET", "/plant/whoami", "", "Authorization", "Bearer "+tok)
		expectProblem(t, r, body, 403, proto.URINotAuthorized)
		r, body = g.do(t, "GET", "/plant/whoami", "", "Authorization", "Bearer "+newJWKS(t).token(t, "alice", "plant", "operator", "plant.read"))
		expectProblem(t, r, body, 401, proto.URIAuthenticationFailed)
	})
	t.Run("signed request", func(t *testing.T) {
		body := `{"temp":19.5}`
		stamp := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		mac := hmac.New(sha256.New, []byte("dev1-secret-0123456789"))
		mac.Write([]byte("dev-1" + stamp + "1" + "77" + body))
		q := url.Values{"key": {"dev-1"}, "timestamp": {stamp}, "seq": {"1"}, "nonce": {"77"}, "signature": {base64.URLEncoding.EncodeToString(mac.Sum(nil))}}
		r, out := g.do(t, "POST", "/plant/ingest?"+q.Encode(), body)
		if r.StatusCode != 202 {
			t.Fatalf("signed: %d %s", r.StatusCode, out)
		}
		r, out = g.do(t, "POST", "/plant/ingest?"+q.Encode(), body)
		expectProblem(t, r, out, 401, proto.URIAuthenticationRequired) // replay
		waitEvent(t, plant, "com.plant.reading", `[{"temp":19.5}]`)
	})
	t.Run("CORS preflight", func(t *testing.T) {
		out, err := exec.Command("curl", "-s", "-i", "-X", "OPTIONS", g.base+"/wamp/realm1/call/com.example.add",
			"-H", "Origin: https://app.example", "-H", "Access-Control-Request-Method: POST", "-H", "Access-Control-Request-Headers: content-type").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v %s", err, out)
		}
		s := strings.ToLower(string(out))
		if !strings.HasPrefix(s, "http/1.1 204") || !strings.Contains(s, "access-control-allow-origin: https://app.example") ||
			!strings.Contains(s, "access-control-allow-methods: post, options") || !strings.Contains(s, "access-control-allow-headers: content-type") {
			t.Fatalf("preflight:\n%s", out)
		}
		out, _ = exec.Command("curl", "-s", "-i", "-X", "OPTIONS", g.base+"/wamp/realm1/call/com.example.add",
			"-H", "Origin: https://evil.example", "-H", "Access-Control-Request-Method: POST").CombinedOutput()
		if !strings.HasPrefix(string(out), "HTTP/1.1 403") || strings.Contains(strings.ToLower(string(out)), "access-control-allow-origin") {
			t.Fatalf("disallowed preflight:\n%s", out)
		}
	})
	t.Run("SSE events", func(t *testing.T) {
		evs := runSSEConsumer(t, []string{"--url", g.base + "/wamp/realm1/events/com.example.news", "--count", "2"}, func() {
			g.do(t, "POST", "/news", `{"text":"via a route"}`)
			g.do(t, "POST", "/wamp/realm1/publish/com.example.news", `{"args":["via the bridge"],"kwargs":{"n":2}}`)
		})
		if len(evs) != 2 || evs[0].Type != "message" || !strings.Contains(evs[0].Data, `"args":["via a route"]`) ||
			!strings.Contains(evs[1].Data, `"args":["via the bridge"],"kwargs":{"n":2}`) || evs[0].ID == "" || !strings.Contains(evs[0].Data, `"publication":`+evs[0].ID) {
			t.Fatalf("SSE events %+v", evs)
		}
		// The WAMP subscriber got them too.
		waitEvent(t, peer, "com.example.news", `["via the bridge"]`)
	})
	t.Run("SSE progressive call", func(t *testing.T) {
		evs := runSSEConsumer(t, []string{"--url", g.base + "/wamp/realm1/call/com.example.count", "--post", `{"args":[3]}`, "--count", "10",
			"--header", "Accept: text/event-stream"}, nil)
		var got []string
		for _, e := range evs {
			got = append(got, e.Type+" "+e.Data)
		}
		want := []string{`progress {"args":[1],"kwargs":{}}`, `progress {"args":[2],"kwargs":{}}`, `progress {"args":[3],"kwargs":{}}`, `result {"args":["done"],"kwargs":{}}`}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("progressive call:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("HTTP callee", func(t *testing.T) {
		var r *http.Response
		var body []byte
		waitUntil(t, "the HTTP callee registered", func() bool {
			r, body = g.do(t, "POST", "/wamp/realm1/call/com.example.weather", `{"args":["Bern"]}`)
			return r.StatusCode == 200
		})
		if string(body) != `{"args":[{"temp":21,"unit":"C"}],"kwargs":{}}` {
			t.Fatalf("HTTP callee result %s", body)
		}
		last, _ := weatherReq.Load("last")
		if !strings.Contains(last.(string), `"procedure":"com.example.weather","args":["Bern"]`) {
			t.Fatalf("upstream got %v", last)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		waitUntil(t, "the webhook subscribed", func() bool {
			g.do(t, "POST", "/wamp/realm1/publish/com.example.alert", `{"args":["fire"]}`)
			select {
			case doc := <-hooks:
				return doc["topic"] == "com.example.alert" && fmt.Sprint(doc["args"]) == "[fire]"
			case <-time.After(200 * time.Millisecond):
				return false
			}
		})
	})
	t.Run("metrics", func(t *testing.T) {
		before := scrape(t, g)
		const n = 9
		for i := 0; i < n; i++ {
			if r, body := g.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[1,1]}`); r.StatusCode != 200 {
				t.Fatalf("%d %s", r.StatusCode, body)
			}
		}
		for i := 0; i < 2; i++ {
			g.do(t, "POST", "/wamp/realm1/call/com.example.nothing", `{}`)
		}
		after := scrape(t, g)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"edgewamp_gateway_requests_total", []string{"route", "bridge_call", "code", "200"}, n},
			{"edgewamp_gateway_requests_total", []string{"route", "bridge_call", "code", "404"}, 2},
			{"edgewamp_messages_received_total", []string{"type", "CALL"}, n + 2},
			{"edgewamp_messages_received_total", []string{"type", "YIELD"}, n},
			{"edgewamp_messages_sent_total", []string{"type", "INVOCATION"}, n},
			{"edgewamp_messages_sent_total", []string{"type", "RESULT"}, n},
			{"edgewamp_messages_sent_total", []string{"type", "ERROR"}, 2},
		} {
			if got := metricValue(after, c.name, c.labels...) - max(metricValue(before, c.name, c.labels...), 0); got != c.want {
				t.Errorf("%s%v: +%v, want +%v", c.name, c.labels, got, c.want)
			}
		}
		if v := metricValue(after, "edgewamp_sessions", "realm", "plant", "transport", "websocket"); v != 1 {
			t.Errorf("plant websocket sessions %v, want 1", v)
		}
		if v := metricValue(after, "edgewamp_calls_in_flight"); v != 0 {
			t.Errorf("calls in flight %v", v)
		}
		// The two autobahn peers joined anonymously over WebSocket and stay
		// connected (router and engine counters, route.Router.Stats and
		// loop.Engine.Stats).
		if v := metricValue(after, "edgewamp_auth_total", "method", "anonymous", "result", "success"); v < 2 {
			t.Errorf("anonymous authentications %v, want >= 2", v)
		}
		if v := metricValue(after, "edgewamp_connections"); v < 2 {
			t.Errorf("connections %v, want >= 2", v)
		}
		for _, name := range []string{"edgewamp_message_bytes_received_total", "edgewamp_events_dropped_total", "edgewamp_connections_refused_total",
			"edgewamp_connections_closed_total", "edgewamp_auth_denied_total", "edgewamp_protocol_violations_total", "edgewamp_gateway_request_duration_seconds", "edgewamp_call_duration_seconds", "go_goroutines"} {
			if after[name] == nil {
				t.Errorf("no %s", name)
			}
		}
	})
	t.Run("openapi", func(t *testing.T) {
		r, body := g.do(t, "GET", "/openapi.json", "")
		var doc struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		if r.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc.OpenAPI != "3.1.0" {
			t.Fatalf("openapi: %d %.200s", r.StatusCode, body)
		}
		for p, m := range map[string]string{"/wamp/{realm}/call/{procedure}": "post", "/calc/add/{a}/{b}": "get", "/echo/{id}": "post",
			"/plant/whoami": "get", "/plant/ingest": "post", "/metrics": "get"} {
			if doc.Paths[p][m] == nil {
				t.Errorf("openapi lacks %s %s", m, p)
			}
		}
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitEvent(t *testing.T, run *interopRun, topic, args string) {
	t.Helper()
	waitUntil(t, "the WAMP subscriber's event on "+topic, func() bool {
		for _, e := range peerEvents(run) {
			b, _ := json.Marshal(e["args"])
			if e["topic"] == topic && string(b) == args {
				return true
			}
		}
		return false
	})
}

func scrape(t *testing.T, g *gwRouter) map[string]*dto.MetricFamily {
	t.Helper()
	r, body := g.do(t, "GET", "/metrics", "")
	if r.StatusCode != 200 {
		t.Fatalf("metrics: %d", r.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	return fams
}

func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.Label {
				ok = ok || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// TestGatewayREADMEExamples runs the curl examples of README's "HTTP
// gateway" section against the built binary (default configuration, the
// gateway on a free port instead of 8081), with an Autobahn|Python callee
// of com.example.add, and checks each output against its "# →" line.
func TestGatewayREADMEExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		interopMissing(t, "curl is not installed")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	i := strings.Index(sec, "\n## HTTP gateway")
	if i < 0 {
		t.Fatal("README has no HTTP gateway section")
	}
	sec = sec[i:]
	start := strings.Index(sec, "```sh\n")
	end := strings.Index(sec[start+6:], "```")
	block := sec[start+6 : start+6+end]
	type example struct{ cmd, want string }
	var exs []example
	var cur string
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "# → "):
			if len(exs) > 0 {
				exs[len(exs)-1].want = strings.TrimPrefix(line, "# → ")
			}
		case strings.HasPrefix(line, "#"), strings.TrimSpace(line) == "":
		default:
			cur += strings.TrimSuffix(strings.TrimSpace(line), "\\") + " "
			if !strings.HasSuffix(line, "\\") {
				exs = append(exs, example{cmd: cur})
				cur = ""
			}
		}
	}
	if len(exs) < 8 {
		t.Fatalf("found %d examples", len(exs))
	}
	g := startGatewayRouter(t)
	peer := startPyPeer(t, g.router, "realm1", "com.example.")
	defer stopPeers(t, g.router, []string{"realm1"}, peer)
	host := strings.TrimPrefix(g.base, "http://")
	for _, ex := range exs {
		cmdline := strings.ReplaceAll(ex.cmd, "127.0.0.1:8081", host)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "sh", "-c", cmdline).CombinedOutput()
		cancel()
		if err != nil {
			// curl --max-time ends a stream with exit 28 (timeout): expected.
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 28 || !strings.Contains(ex.cmd, "--max-time") {
				t.Errorf("%s: %v\n%s", ex.cmd, err, out)
				continue
			}
		}
		if ex.want == "" {
			t.Errorf("%s: no # → line", ex.cmd)
			continue
		}
		if !strings.Contains(string(out), ex.want) {
			t.Errorf("%s:\n got %s\nwant %s", ex.cmd, out, ex.want)
		}
	}
}

// TestGatewayConfigErrors: mistakes in the gateway section are refused by
// check-config, each naming its line.
func TestGatewayConfigErrors(t *testing.T) {
	head := "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: realm1}]\n"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"listen", head + "gateway:\n  listen: nowhere\n", []string{`line 4: gateway.listen "nowhere" is not host:port`}},
		{"unknown key", head + "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - methd: GET\n", []string{"line 6: key methd is not a known configuration key"}},
		{"path parameter", head + "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - method: GET\n      path: /a/{id}\n      realm: realm1\n      call: com.a\n      args: [\"$/path/nid\"]\n",
			[]string{"line 10: gateway.routes[0].args: $/path/nid: the path pattern has no parameter {nid}"}},
		{"realm", head + "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - {method: GET, path: /a, realm: other, call: com.a}\n", []string{`line 6: route realm "other" is not configured`}},
		{"twice", head + "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - {method: GET, path: /a, realm: realm1, call: com.a}\n    - {method: GET, path: /a, realm: realm1, call: com.b}\n",
			[]string{"line 7: gateway.routes[1].path: GET /a is routed twice"}},
		{"response", head + "gateway:\n  listen: 127.0.0.1:0\n  routes:\n    - method: GET\n      path: /a\n      realm: realm1\n      call: com.a\n      response: {body: \"$/body\"}\n",
			[]string{"line 10: gateway.routes[0].response.body"}},
		{"webhook url", head + "gateway:\n  listen: 127.0.0.1:0\n  webhooks:\n    - {realm: realm1, topic: com.t, url: \"ftp://x\"}\n", []string{"line 6: gateway.webhooks[0].url: url must be an http(s) URL"}},
		{"cors", head + "gateway:\n  listen: 127.0.0.1:0\n  cors:\n    allowed_origins: [app.example]\n", []string{"line 6: gateway.cors.allowed_origins[0]"}},
		{"api key", head + "gateway:\n  listen: 127.0.0.1:0\n  api_keys:\n    - {name: k, key: short, realm: realm1, role: r}\n", []string{"line 6: gateway.api_keys[0].key: an API key must be at least 16 characters"}},
		{"jwks", head + "gateway:\n  listen: 127.0.0.1:0\n  bearer: {jwks_file: /nonexistent/jwks.json}\n", []string{"line 5: gateway.bearer.jwks_file"}},
		{"hosts", head + "gateway:\n  listen: 127.0.0.1:0\n  hosts: [edge.example, \"edge.example:8080\"]\n", []string{"line 5: gateway.hosts[1]: not a host name"}},
		{"off is fine", head + "gateway:\n  listen: \"off\"\n  routes:\n    - {method: GET, path: /a, realm: nope, call: com.a}\n", []string{": ok"}},
		{"application_error_status 1000", head + "gateway:\n  listen: 127.0.0.1:0\n  application_error_status: 1000\n",
			[]string{"line 5: gateway.application_error_status: status 1000 is not an error status (400-599)"}},
		{"application_error_status 42", head + "gateway:\n  listen: 127.0.0.1:0\n  application_error_status: 42\n",
			[]string{"line 5: gateway.application_error_status: status 42 is not an error status (400-599)"}},
		{"application_error_status 0", head + "gateway:\n  listen: 127.0.0.1:0\n  application_error_status: 0\n",
			[]string{"line 5: gateway.application_error_status: status 0 is not an error status (400-599)"}},
		{"application_error_status -1", head + "gateway:\n  listen: 127.0.0.1:0\n  application_error_status: -1\n",
			[]string{"line 5: gateway.application_error_status: status -1 is not an error status (400-599)"}},
		{"application_error_status 599", head + "gateway:\n  listen: 127.0.0.1:0\n  application_error_status: 599\n", []string{": ok"}},
	}
	dir := t.TempDir()
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(k.name, " ", "_")+".yaml")
			os.WriteFile(p, []byte(k.body), 0o600)
			out, errOut, _ := runCLI("check-config", p)
			for _, w := range k.want {
				if !strings.Contains(out+errOut, w) {
					t.Fatalf("output %q lacks %q", out+errOut, w)
				}
			}
		})
	}
}

// TestGatewayApplicationErrorStatus: gateway.application_error_status is
// the status of a callee's application error; one that is not an error
// status (400-599) is refused at start and at a reload, which keeps the
// running one. (It was taken: the lane then wrote the status line
// "HTTP/1.1 1000", net/http panicked on WriteHeader(1000) and sent an
// empty 200.)
func TestGatewayApplicationErrorStatus(t *testing.T) {
	yml := func(status string) string { return "gateway:\n  application_error_status: " + status + "\n" }
	g := startReloadedGateway(t, yml("503"))
	callee := g.router.dial("rs://"+g.router.addr, proto.JSON)
	defer callee.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := callee.Register(ctx, "com.example.fail", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: "com.example.error.failed"}
	}, nil); err != nil {
		t.Fatal(err)
	}
	call := func(what string) {
		t.Helper()
		resp, body := g.do(t, "POST", "/wamp/realm1/call/com.example.fail", `{"args":[]}`)
		expectProblem(t, resp, body, 503, "com.example.error.failed")
	}
	call("at start")
	for _, bad := range []string{"1000", "42", "0", "-1"} {
		g.reloadRefused(yml(bad))
		if want := "gateway.application_error_status: status " + bad + " is not an error status (400-599)"; !strings.Contains(g.router.logs(), want) {
			t.Fatalf("reload of %s: no %q in the log:\n%s", bad, want, g.router.logs())
		}
		call("after the reload of " + bad + " was refused")
	}

	// At start: refused, naming the key.
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte(yml("1000")), 0o600)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	out, err := exec.CommandContext(rctx, binPath, "run", "-config", p, "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "line 2: gateway.application_error_status: status 1000 is not an error status (400-599)") {
		t.Fatalf("run with application_error_status 1000: exit %d (%v), want 1 naming the key:\n%s", code, err, out)
	}
}

// TestGatewayListenFlag: -gateway-listen off runs without the gateway;
// the embedded default serves it on 127.0.0.1:8081.
func TestGatewayListenFlag(t *testing.T) {
	c, err := loadConfig("", nil)
	if err != nil || c.Gateway.Listen != "127.0.0.1:8081" {
		t.Fatalf("default gateway.listen %q (%v)", c.Gateway.Listen, err)
	}
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off"))
	if !strings.Contains(r.logs(), "HTTP gateway off") || r.gw != "" {
		t.Fatalf("gateway not off:\n%s", r.logs())
	}
}
