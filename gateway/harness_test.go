package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The test harness: a real router on real event loops (loop, on a
// loopback port), real WAMP clients (client) as callees and subscribers,
// and the gateway on another loopback port, driven by net/http.

type env struct {
	t    testing.TB
	r    *route.Router
	eng  *loop.Engine
	gw   *Server
	lane bool // the event loop's HTTP lane serves the gateway's port
	// laneServed counts the requests the lane served itself (not handed
	// to net/http).
	laneServed *atomic.Int64
	wamp       string // ws://.../ws
	base       string // http://host:port
	hc         *http.Client
}

// testLogger discards, unless EDGEWAMP_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("EDGEWAMP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// secureRealm is a realm with RBAC: role "user" may call com.ok.* and
// publish/subscribe com.pub.*, and is granted the HTTP bridge; role
// "nobridge" may do the same but not over the bridge.
func secureRealm() route.RealmConfig {
	z, err := route.NewRBAC([]route.Role{
		{Name: "user", Permissions: []route.Permission{
			{URI: "com.ok.", Match: proto.MatchPrefix, Call: true},
			{URI: "com.pub.", Match: proto.MatchPrefix, Publish: true, Subscribe: true},
		}},
		{Name: "nobridge", Permissions: []route.Permission{{URI: "com.ok.", Match: proto.MatchPrefix, Call: true}}},
		{Name: "svc", Permissions: []route.Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: true}}},
	})
	if err != nil {
		panic(err)
	}
	return route.RealmConfig{Name: "secure", Authorizer: z, Anonymous: true, AnonymousRole: "svc"}
}

func newEnv(t testing.TB, mutate func(*Options)) *env {
	t.Helper()
	return newEnvRoute(t, nil, mutate)
}

// newEnvRoute is newEnv with the router's configuration changed by
// mutateRoute.
func newEnvRoute(t testing.TB, mutateRoute func(*route.Config), mutate func(*Options)) *env {
	t.Helper()
	return newEnvLoop(t, mutateRoute, nil, mutate)
}

// newEnvLoop is newEnvRoute with the event loops' options changed by
// mutateLoop.
func newEnvLoop(t testing.TB, mutateRoute func(*route.Config), mutateLoop func(*loop.Options), mutate func(*Options)) *env {
	t.Helper()
	log := testLogger()
	rc := route.Config{
		Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}, secureRealm()},
		Shards: 2,
		Logger: log,
	}
	if mutateRoute != nil {
		mutateRoute(&rc)
	}
	r, err := route.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Addr:   "127.0.0.1:0",
		Router: r,
		Realms: []RealmAccess{
			{Name: "realm1", Bridge: true, Anonymous: true, AnonymousRole: "anonymous"},
			{Name: "secure", Bridge: true, Security: true, BridgeRoles: []string{"user"}, Anonymous: false},
		},
		Logger: log,
	}
	if mutate != nil {
		mutate(&o)
	}
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's port is served as in production: by the event loops'
	// HTTP lane, which hands net/http what it does not serve, unless
	// EDGEWAMP_TEST_GATEWAY_LANE=off (make test runs the package both
	// ways) or the gateway serves TLS.
	lo := loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, Logger: log}
	lane := o.TLS == nil && os.Getenv("EDGEWAMP_TEST_GATEWAY_LANE") != "off"
	served := new(atomic.Int64)
	if lane {
		l := DefaultedLimits(o.Limits)
		lo.Listeners = append(lo.Listeners, loop.Listener{Addr: "127.0.0.1:0", Transport: loop.HTTPLane, MaxConns: l.MaxConnections})
		lo.Lane = loop.LaneConfig{Lane: testLane{gw, served}, MaxBody: l.MaxBody, MaxHeader: l.MaxHeader, HeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout}
	}
	if mutateLoop != nil {
		mutateLoop(&lo)
	}
	eng, err := loop.New(r, lo)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	if lane {
		err = gw.StartLane(eng.Addrs()[1])
	} else {
		err = gw.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, r: r, eng: eng, gw: gw, lane: lane, laneServed: served, wamp: "ws://" + eng.Addrs()[0].String() + "/ws", base: "http://" + gw.Addr().String(),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if _, free := laneFreeTests.Load(t); free && lane {
		t.Cleanup(func() {
			if n := served.Load(); n != 0 {
				t.Errorf("the event loop's HTTP lane served %d of this test's requests: it is not lane-free (laneFree)", n)
			}
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("engine shutdown: %v", err)
		}
		e.hc.CloseIdleConnections()
	})
	return e
}

// laneFreeTests holds the tests that called laneFree (*testing.T).
var laneFreeTests sync.Map

// laneFree declares that no request of the test is one the event loop's
// HTTP lane serves itself (it serves an unrouted POST …/call/… without an
// Origin, a bearer token or an event stream, and hands every other
// request to net/http): event streams, webhooks, HTTP callees, declarative
// routes, reloads. make test's second run of the package, without the lane
// (EDGEWAMP_TEST_GATEWAY_LANE=off: net/http accepts the connections
// itself), skips such a test, which would run the same handlers again
// (about half the package's time); the tests of the HTTP layer itself
// (heads, bodies, hosts, origins, limits) and those whose calls the lane
// serves run both ways. In the run with the lane, an env made for the test
// fails it if the lane served any of its requests.
func laneFree(t *testing.T) {
	t.Helper()
	if os.Getenv("EDGEWAMP_TEST_GATEWAY_LANE") == "off" {
		t.Skip("lane-free: the run with the event loop's HTTP lane ran the same handlers (laneFree)")
	}
	laneFreeTests.Store(t, true)
	t.Cleanup(func() { laneFreeTests.Delete(t) })
}

// testLane is the engine's loop.Lane (cmd has the same adapter), counting
// the requests it served.
type testLane struct {
	gw     *Server
	served *atomic.Int64
}

func (l testLane) Serve(r *http.Request, body []byte, w loop.LaneWriter) bool {
	ok := l.gw.ServeLane(r, body, w)
	if ok {
		l.served.Add(1)
	}
	return ok
}

func (l testLane) HandOff(c net.Conn) { l.gw.HandOff(c) }

// dial joins realm as an anonymous WAMP client (or with cfg's identity).
func (e *env) dial(realm string, ser proto.Serializer) *client.Session {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: e.wamp, Realm: realm, Serializer: ser})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) register(s *client.Session, uri string, h client.Handler) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Register(ctx, uri, h, nil); err != nil {
		e.t.Fatalf("register %s: %v", uri, err)
	}
}

// do sends a request and returns the response with its body read.
func (e *env) do(method, path, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// problemDoc is an RFC 9457 problem as the gateway sends it.
type problemDoc struct {
	Type   string            `json:"type"`
	Title  string            `json:"title"`
	Status int               `json:"status"`
	Detail string            `json:"detail"`
	Error  string            `json:"error"`
	Args   []json.RawMessage `json:"args"`
	Kwargs map[string]any    `json:"kwargs"`
}

// expectProblem checks a problem response's status, content type and URI.
func expectProblem(t *testing.T, resp *http.Response, body []byte, status int, uri string) problemDoc {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, body)
	}
	var p problemDoc
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, body)
	}
	if p.Status != status || p.Error != uri || p.Type != "about:blank" || p.Title == "" {
		t.Fatalf("problem %+v, want status %d error %s", p, status, uri)
	}
	return p
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event string
	data      string
}

// sseReader parses a text/event-stream (the WHATWG algorithm: fields,
// multi-line data, comments, blank-line dispatch).
type sseReader struct {
	sc *bufio.Scanner
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &sseReader{sc: sc}
}

// next returns the next event, or an error at the end of the stream.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	have := false
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if have {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
			have = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return ev, err
	}
	return ev, io.EOF
}

// stream opens an SSE request and returns the response and a reader.
func (e *env) stream(ctx context.Context, method, path, body string, hdr ...string) (*http.Response, *sseReader) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp, newSSEReader(resp.Body)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin is waitFor with its own deadline.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRequest(ctx context.Context, method, url, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}

// newTestRouter is a router for tests that only build a Server.
func newTestRouter() (*route.Router, error) {
	return route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}}, Shards: 1, Logger: testLogger()})
}
