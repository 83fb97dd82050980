package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// routesEnv: a gateway with one route of each kind, a bearer verifier
// over real JWTs, an API key and a signing key, and a WAMP callee that
// reports what it received.
func routesEnv(t *testing.T) (*env, *jwtIssuer, *atomic.Value) {
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) {
		o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"}
		o.APIKeys = []APIKey{{Name: "ops", Key: "ops-key-0123456789abcdef", Realm: "realm1", AuthID: "ops", Role: "operator"}}
		o.SigningKeys = []SigningKey{{Key: "device-1", Secret: "s3cret-s3cret-s3cret", Realm: "realm1", AuthID: "device-1", Role: "device"}}
		o.Routes = []Route{
			{Name: "device-state", Method: "GET", Path: "/devices/{id}/state", Realm: "realm1", Call: "com.device.state",
				Args:     []any{"$/path/id|int"},
				Kwargs:   map[string]any{"verbose": "$/query/verbose|bool?", "trace": "$/headers/x-trace?", "by": "$/auth/authid", "lit": "$$literal", "n": 3},
				Response: Response{Body: "$/args/0"}},
			{Name: "device-command", Method: "POST", Path: "/devices/{id}/command", Realm: "realm1", Call: "com.device.command",
				Kwargs:   map[string]any{"id": "$/path/id", "cmd": "$/body/cmd", "params": "$/body/params?"},
				Response: Response{Body: "$/kwargs", Status: 201},
				Errors:   map[string]int{"com.example.no_device": 404}},
			{Name: "echo-args", Method: "POST", Path: "/echo", Realm: "realm1", Call: "com.echo", Args: "$/body/args", BodyLimit: 64},
			{Name: "reading", Method: "PUT", Path: "/devices/{id}/reading", Realm: "realm1", Publish: "com.dev.reading",
				Args: []any{"$/path/id", "$/body"}, Acknowledge: true},
			{Name: "reading-fire", Method: "POST", Path: "/devices/{id}/reading", Realm: "realm1", Publish: "com.dev.reading",
				Args: []any{"$/path/id", "$/body"}},
			{Name: "slow", Method: "GET", Path: "/slow", Realm: "realm1", Call: "com.slow", Timeout: 150 * time.Millisecond},
			{Name: "scoped", Method: "GET", Path: "/me", Realm: "realm1", Call: "com.whoami",
				Kwargs: map[string]any{"sub": "$/claims/sub", "tenant": "$/claims/tenant?"}, Auth: Auth{Type: "bearer", Scopes: []string{"me.read"}}},
			{Name: "operators", Method: "GET", Path: "/ops", Realm: "realm1", Call: "com.whoami", Auth: Auth{Type: "apikey", Roles: []string{"operator"}}},
			{Name: "signed", Method: "POST", Path: "/ingest", Realm: "realm1", Call: "com.whoami", Kwargs: map[string]any{"data": "$/body"}, Auth: Auth{Type: "signed"}},
			{Name: "public", Method: "GET", Path: "/public", Realm: "realm1", Call: "com.whoami", Auth: Auth{Type: "none"}, AuthID: "web", Role: "public",
				CORS: &CORS{AllowedOrigins: []string{"https://app.example"}, ExposedHeaders: []string{"X-Request-Id"}}},
		}
	})
	callee := e.dial("realm1", proto.CBOR)
	seen := &atomic.Value{}
	e.register(callee, "com.device.state", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		seen.Store(inv)
		return &client.Result{Args: []any{map[string]any{"id": inv.Args[0], "on": true}}}, nil
	})
	e.register(callee, "com.device.command", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		seen.Store(inv)
		if inv.Kwargs["id"] == "404" {
			return nil, &client.Error{URI: "com.example.no_device", Args: []any{"no device 404"}}
		}
		return &client.Result{Kwargs: map[string]any{"accepted": inv.Kwargs["cmd"]}}, nil
	})
	e.register(callee, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	e.register(callee, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	e.register(callee, "com.whoami", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		seen.Store(inv)
		return &client.Result{Kwargs: map[string]any{"kwargs": inv.Kwargs}}, nil
	})
	return e, iss, seen
}

func TestRouteCallMapping(t *testing.T) {
	laneFree(t)
	e, _, seen := routesEnv(t)
	r, body := e.do("GET", "/devices/17/state?verbose=yes", "", "X-Trace", "abc")
	if r.StatusCode != 200 || string(body) != `{"id":17,"on":true}` {
		t.Fatalf("state: %d %s", r.StatusCode, body)
	}
	inv := seen.Load().(*client.Invocation)
	if inv.Args[0] != int64(17) || inv.Kwargs["verbose"] != true || inv.Kwargs["trace"] != "abc" ||
		inv.Kwargs["lit"] != "$literal" || inv.Kwargs["n"] != int64(3) || inv.Kwargs["by"] != "" {
		t.Fatalf("invocation %+v %+v", inv.Args, inv.Kwargs)
	}
	// Optional values absent: left out.
	r, body = e.do("GET", "/devices/18/state", "")
	inv = seen.Load().(*client.Invocation)
	if _, ok := inv.Kwargs["verbose"]; r.StatusCode != 200 || ok {
		t.Fatalf("state without query: %d %s %+v", r.StatusCode, body, inv.Kwargs)
	}
	r, body = e.do("GET", "/devices/x7/state", "")
	p := expectProblem(t, r, body, 400, proto.URIInvalidArgument)
	if !strings.Contains(p.Detail, "/path/id must be an integer") {
		t.Fatalf("conversion error: %q", p.Detail)
	}

	r, body = e.do("POST", "/devices/5/command", `{"cmd":"reboot","params":{"delay":3}}`)
	if r.StatusCode != 201 || string(body) != `{"accepted":"reboot"}` {
		t.Fatalf("command: %d %s", r.StatusCode, body)
	}
	inv = seen.Load().(*client.Invocation)
	if inv.Kwargs["id"] != "5" || fmt.Sprint(inv.Kwargs["params"]) != "map[delay:3]" {
		t.Fatalf("command kwargs %+v", inv.Kwargs)
	}
	r, body = e.do("POST", "/devices/5/command", `{"params":{}}`)
	p = expectProblem(t, r, body, 400, proto.URIInvalidArgument)
	if p.Detail != "the request lacks /body/cmd" {
		t.Fatalf("missing value: %q", p.Detail)
	}
	r, body = e.do("POST", "/devices/404/command", `{"cmd":"x"}`)
	expectProblem(t, r, body, 404, "com.example.no_device") // the route's error table

	r, body = e.do("POST", "/echo", `{"args":[1,"two",[3]]}`)
	if r.StatusCode != 200 || string(body) != `{"args":[1,"two",[3]],"kwargs":{}}` {
		t.Fatalf("echo: %d %s", r.StatusCode, body)
	}
	r, body = e.do("POST", "/echo", `{"args":{"not":"a list"}}`)
	expectProblem(t, r, body, 400, proto.URIInvalidArgument)
	r, body = e.do("POST", "/echo", `{"args":["`+strings.Repeat("x", 100)+`"]}`)
	expectProblem(t, r, body, 413, proto.URIPayloadSizeExceeded) // body_limit 64

	r, body = e.do("GET", "/slow", "")
	expectProblem(t, r, body, 504, proto.URITimeout)

	r, body = e.do("DELETE", "/devices/5/command", "")
	expectProblem(t, r, body, 405, URIMethodNotAllowed)
	if a := r.Header.Get("Allow"); a != "POST, OPTIONS" {
		t.Fatalf("Allow %q", a)
	}
}

func TestRoutePublishMapping(t *testing.T) {
	laneFree(t)
	e, _, _ := routesEnv(t)
	sub := e.dial("realm1", proto.MsgPack)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan *client.Event, 4)
	if _, err := sub.Subscribe(ctx, "com.dev.reading", func(ev *client.Event) { got <- ev }, nil); err != nil {
		t.Fatal(err)
	}
	r, body := e.do("PUT", "/devices/9/reading", `{"t":21.5}`)
	var ack struct{ Publication uint64 }
	if r.StatusCode != 200 || json.Unmarshal(body, &ack) != nil || ack.Publication == 0 {
		t.Fatalf("acknowledged publish route: %d %s", r.StatusCode, body)
	}
	ev := <-got
	if ev.Args[0] != "9" || fmt.Sprint(ev.Args[1]) != "map[t:21.5]" {
		t.Fatalf("event %+v", ev.Args)
	}
	r, body = e.do("POST", "/devices/9/reading", `{"t":22}`)
	if r.StatusCode != 202 || len(body) != 0 {
		t.Fatalf("publish route: %d %s", r.StatusCode, body)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("no event")
	}
}

func TestRouteBearerAuth(t *testing.T) {
	laneFree(t)
	e, iss, seen := routesEnv(t)
	r, body := e.do("GET", "/me", "")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	good := iss.token("alice", "realm1", "user", "me.read other", time.Minute, map[string]any{"tenant": "acme"})
	r, body = e.do("GET", "/me", "", "Authorization", "Bearer "+good)
	if r.StatusCode != 200 {
		t.Fatalf("valid token: %d %s", r.StatusCode, body)
	}
	inv := seen.Load().(*client.Invocation)
	if inv.Kwargs["sub"] != "alice" || inv.Kwargs["tenant"] != "acme" || inv.CallerAuthID != "" && inv.CallerAuthID != "alice" {
		t.Fatalf("claims in kwargs: %+v", inv.Kwargs)
	}
	noScope := iss.token("alice", "realm1", "user", "other", time.Minute, nil)
	r, body = e.do("GET", "/me", "", "Authorization", "Bearer "+noScope)
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	expired := iss.token("alice", "realm1", "user", "me.read", -time.Minute, nil)
	r, body = e.do("GET", "/me", "", "Authorization", "Bearer "+expired)
	expectProblem(t, r, body, 401, proto.URIAuthenticationFailed)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	forged := newJWTIssuer(t).token("alice", "realm1", "user", "me.read", time.Minute, nil)
	r, body = e.do("GET", "/me", "", "Authorization", "Bearer "+forged)
	expectProblem(t, r, body, 401, proto.URIAuthenticationFailed)
	other := iss.token("alice", "secure", "user", "me.read", time.Minute, nil)
	r, body = e.do("GET", "/me", "", "Authorization", "Bearer "+other)
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	// An API key does not satisfy a bearer route.
	r, body = e.do("GET", "/me", "", "X-API-Key", "ops-key-0123456789abcdef")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)

	// Tokens on the bridge: the realm's anonymous role is not needed.
	r, body = e.do("POST", "/wamp/realm1/call/com.whoami", `{}`, "Authorization", "Bearer "+good)
	if r.StatusCode != 200 {
		t.Fatalf("bridge with a token: %d %s", r.StatusCode, body)
	}
}

func TestRouteAPIKeyAuth(t *testing.T) {
	laneFree(t)
	e, _, _ := routesEnv(t)
	r, body := e.do("GET", "/ops", "", "X-API-Key", "ops-key-0123456789abcdef")
	if r.StatusCode != 200 {
		t.Fatalf("API key: %d %s", r.StatusCode, body)
	}
	r, body = e.do("GET", "/ops", "", "X-API-Key", "ops-key-0123456789abcdeX")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	r, body = e.do("GET", "/ops", "")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
}

// crossbarSign signs a request as Crossbar's HTTP bridge clients do.
func crossbarSign(key, secret string, body []byte, ts time.Time, seq, nonce int) url.Values {
	stamp := ts.UTC().Format("2006-01-02T15:04:05.000000Z")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(key + stamp + fmt.Sprint(seq) + fmt.Sprint(nonce)))
	mac.Write(body)
	return url.Values{"key": {key}, "timestamp": {stamp}, "seq": {fmt.Sprint(seq)}, "nonce": {fmt.Sprint(nonce)},
		"signature": {base64.URLEncoding.EncodeToString(mac.Sum(nil))}}
}

func TestRouteSignedRequests(t *testing.T) {
	laneFree(t)
	e, _, seen := routesEnv(t)
	body := `{"temp":20}`
	q := crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 1, 1001)
	r, out := e.do("POST", "/ingest?"+q.Encode(), body)
	if r.StatusCode != 200 {
		t.Fatalf("signed: %d %s", r.StatusCode, out)
	}
	if inv := seen.Load().(*client.Invocation); fmt.Sprint(inv.Kwargs["data"]) != "map[temp:20]" {
		t.Fatalf("signed kwargs %+v", inv.Kwargs)
	}
	// The same request again: a replay.
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	// A changed body.
	q = crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 2, 1002)
	r, out = e.do("POST", "/ingest?"+q.Encode(), `{"temp":99}`)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	// A stale timestamp.
	q = crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now().Add(-time.Hour), 3, 1003)
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	// The wrong secret, an unknown key, a missing parameter.
	q = crossbarSign("device-1", "wrong-wrong-wrong-wrong", []byte(body), time.Now(), 4, 1004)
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	q = crossbarSign("device-9", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 5, 1005)
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	q = crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 6, 1006)
	q.Del("nonce")
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 400, proto.URIInvalidArgument)
	// Signed requests work on the bridge too.
	q = crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 7, 1007)
	r, out = e.do("POST", "/wamp/realm1/publish/com.dev.x?"+q.Encode(), body)
	expectProblem(t, r, out, 400, proto.URIInvalidArgument) // {"temp":20} is not a bridge body
	b2 := `{"args":[1]}`
	q = crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(b2), time.Now(), 8, 1008)
	r, out = e.do("POST", "/wamp/realm1/publish/com.dev.x?"+q.Encode(), b2)
	if r.StatusCode != 202 {
		t.Fatalf("signed bridge publish: %d %s", r.StatusCode, out)
	}
}

func TestRouteCORS(t *testing.T) {
	laneFree(t)
	e, _, _ := routesEnv(t)
	pre := func(path, origin, method, headers string) (*http.Response, []byte) {
		h := []string{"Origin", origin, "Access-Control-Request-Method", method}
		if headers != "" {
			h = append(h, "Access-Control-Request-Headers", headers)
		}
		return e.do("OPTIONS", path, "", h...)
	}
	r, body := pre("/public", "https://app.example", "GET", "authorization, content-type")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		r.Header.Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" || r.Header.Get("Access-Control-Max-Age") != "600" ||
		r.Header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" {
		t.Fatalf("preflight: %d %v %s", r.StatusCode, r.Header, body)
	}
	r, body = pre("/public", "https://evil.example", "GET", "")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	r, body = pre("/public", "https://app.example", "GET", "x-evil")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
	r, _ = e.do("GET", "/public", "", "Origin", "https://app.example")
	if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || r.Header.Get("Access-Control-Expose-Headers") != "X-Request-Id" {
		t.Fatalf("CORS response headers: %d %v", r.StatusCode, r.Header)
	}
	r, _ = e.do("GET", "/public", "", "Origin", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("a disallowed origin got Access-Control-Allow-Origin")
	}
	// Routes without a policy and the bridge without one: preflights refused.
	r, body = pre("/devices/1/state", "https://app.example", "GET", "")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight on a route without CORS: %d %v %s", r.StatusCode, r.Header, body)
	}
	r, body = pre("/wamp/realm1/call/com.x", "https://app.example", "POST", "")
	expectProblem(t, r, body, 403, proto.URINotAuthorized)
}

func TestBridgeCORS(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) { o.CORS = CORS{AllowedOrigins: []string{"*"}} })
	r, body := e.do("OPTIONS", "/wamp/realm1/call/com.x", "", "Origin", "https://any.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Access-Control-Allow-Methods") != "POST, OPTIONS" {
		t.Fatalf("bridge preflight: %d %v %s", r.StatusCode, r.Header, body)
	}
	r, body = e.do("OPTIONS", "/wamp/realm1/events/com.x", "", "Origin", "https://any.example", "Access-Control-Request-Method", "POST")
	expectProblem(t, r, body, 403, proto.URINotAuthorized) // events is GET
	r, _ = e.do("OPTIONS", "/wamp/realm1/call/com.x", "")
	if r.StatusCode != 204 || r.Header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("plain OPTIONS: %d %v", r.StatusCode, r.Header)
	}
}

// TestRouteConfigErrors: every mistake is reported at once, naming the
// field.
func TestRouteConfigErrors(t *testing.T) {
	r, err := newTestRouter()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = New(Options{Addr: "127.0.0.1:0", Router: r, Routes: []Route{
		{Method: "GET", Path: "/a/{id}", Realm: "realm1", Call: "com.a", Args: []any{"$/path/nope"}},
		{Method: "FETCH", Path: "/b", Realm: "realm1", Call: "com.b"},
		{Method: "GET", Path: "/c", Realm: "realm1", Call: "com.c", Publish: "com.c"},
		{Method: "GET", Path: "/d", Realm: "realm1", Call: "com.d", Response: Response{Body: "$/body/x"}},
		{Method: "GET", Path: "/e", Realm: "realm1", Call: "com.e", Args: []any{"$/query/a|hex"}},
		{Method: "GET", Path: "/f", Realm: "realm1", Call: "com.f", Auth: Auth{Type: "apikey", Scopes: []string{"x"}}},
		{Method: "GET", Path: "/g", Realm: "realm1", Call: "com.g", Kwargs: []any{1}},
		{Method: "GET", Path: "/wamp/x", Realm: "realm1", Call: "com.h"},
		{Method: "GET", Path: "/i", Realm: "realm1", Call: "com.i"},
		{Method: "GET", Path: "/i", Realm: "realm1", Call: "com.i2"},
		{Method: "GET", Path: "/j", Realm: "realm1", Call: "com.j", CORS: &CORS{AllowedOrigins: []string{"app.example"}}},
		{Method: "POST", Path: "/oauth/token", Realm: "realm1", Call: "com.k"}, // below a mount: would take its endpoint over
	}, Mount: map[string]http.Handler{"/metrics": http.NotFoundHandler(), "/oauth/": http.NotFoundHandler()}})
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	var paths []string
	for _, e := range unwrapAll(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a FieldError: %v", e)
		}
		paths = append(paths, fmt.Sprint(fe.Path))
	}
	for _, want := range []string{"[routes 0 args]", "[routes 1 method]", "[routes 2]", "[routes 3 response body]", "[routes 4 args]",
		"[routes 5 auth scopes]", "[routes 6 kwargs]", "[routes 7 path]", "[routes 9 path]", "[routes 10 cors allowed_origins 0]", "[routes 11 path]", "[mount /metrics]"} {
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
			t.Errorf("no error at %s; got %v\n%v", want, paths, err)
		}
	}
}

// TestApplicationErrorStatusRange: ApplicationErrorStatus is written as
// a response's status, so it must be an error status (400-599); 0 is the
// default, 502. (1000 was taken: the lane then wrote an invalid status
// line and net/http panicked in WriteHeader.)
func TestApplicationErrorStatusRange(t *testing.T) {
	for _, st := range []int{0, 400, 502, 599} {
		if err := Validate(Options{Addr: "127.0.0.1:0", ApplicationErrorStatus: st}); err != nil {
			t.Errorf("ApplicationErrorStatus %d refused: %v", st, err)
		}
	}
	for _, st := range []int{-1, 42, 200, 399, 600, 1000} {
		err := Validate(Options{Addr: "127.0.0.1:0", ApplicationErrorStatus: st})
		var fe *FieldError
		if !errors.As(err, &fe) || fmt.Sprint(fe.Path) != "[application_error_status]" || !strings.Contains(fe.Msg, "400-599") {
			t.Errorf("ApplicationErrorStatus %d: %v, want a FieldError at application_error_status", st, err)
		}
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

// TestGETAnswersNotStored: the JSON answers of GET endpoints that hold
// live or per-principal data (health, readiness, a GET route's call
// result, its problem documents) carry Cache-Control: no-store, so that
// neither a browser nor a shared proxy keeps one principal's answer (or a
// stale "ready") for the next request. Before, only problems, SSE and
// /metrics did.
func TestGETAnswersNotStored(t *testing.T) {
	laneFree(t)
	e, iss, _ := routesEnv(t)
	tok := iss.token("alice", "realm1", "user", "me.read", time.Minute, nil)
	for _, c := range []struct {
		path string
		hdr  []string
		code int
	}{
		{"/healthz", nil, 200},
		{"/readyz", nil, 200},
		{"/devices/17/state", nil, 200},
		{"/me", []string{"Authorization", "Bearer " + tok}, 200},
		{"/devices/x7/state", nil, 400},
	} {
		r, body := e.do("GET", c.path, "", c.hdr...)
		if r.StatusCode != c.code {
			t.Fatalf("GET %s: %d %s", c.path, r.StatusCode, body)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q, want no-store", c.path, got)
		}
	}
}

// TestRouteMalformedBinaryArgsRefused: a route's arguments come from the
// request (body, query, path, headers); a string there starting with NUL
// is a WAMP binary string, and one with malformed base64 is refused 400
// wamp.error.invalid_argument, as the bridge refuses it (whatever the
// route's errors table says), instead of reaching the JSON callee, which
// cannot decode the INVOCATION and drops its connection (found by review:
// 409 wamp.error.canceled, the callee's session gone).
func TestRouteMalformedBinaryArgsRefused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "echo-body", Method: "POST", Path: "/echo", Realm: "realm1", Call: "com.rev.echo", Args: "$/body/args",
				Errors: map[string]int{proto.URIInvalidArgument: 422}},
			{Name: "echo-query", Method: "GET", Path: "/q", Realm: "realm1", Call: "com.rev.echo", Args: []any{"$/query/q"}},
		}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.rev.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	for _, c := range []struct{ name, method, path, body string }{
		{"body", "POST", "/echo", `{"args":["\u0000!!!!"]}`},
		{"query", "GET", "/q?q=" + url.QueryEscape("\x00!!!!"), ""},
		{"unpadded", "GET", "/q?q=" + url.QueryEscape("\x00AQI"), ""},
	} {
		resp, body := e.do(c.method, c.path, c.body)
		expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
	}
	// The callee's session survived, and a well-formed binary string
	// still goes through.
	resp, body := e.do("GET", "/q?q="+url.QueryEscape("\x00AQI="), "")
	if resp.StatusCode != http.StatusOK || string(body) != `{"args":["\u0000AQI="],"kwargs":{}}` {
		t.Fatalf("a well-formed binary string: %d %s", resp.StatusCode, body)
	}
}

// TestRoutePublishMalformedBinaryArgsRefused: the same through a publish
// route, whose path segment starting with %00 reached every JSON
// subscriber of the topic as an EVENT it could not decode (found by
// review: 200, 3 of 3 subscribers' sessions gone).
func TestRoutePublishMalformedBinaryArgsRefused(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{
			{Name: "pub-path", Method: "POST", Path: "/p/{id}", Realm: "realm1", Publish: "com.rev.news", Args: []any{"$/path/id"}, Acknowledge: true},
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var subs []*client.Session
	got := make(chan *client.Event, 8)
	for i := 0; i < 3; i++ {
		s := e.dial("realm1", proto.JSON)
		if _, err := s.Subscribe(ctx, "com.rev.news", func(ev *client.Event) { got <- ev }, nil); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	resp, body := e.do("POST", "/p/%00!!!!", "")
	expectProblem(t, resp, body, http.StatusBadRequest, proto.URIInvalidArgument)
	if resp, body = e.do("POST", "/p/ok", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a well-formed publication: %d %s", resp.StatusCode, body)
	}
	for range subs {
		select {
		case ev := <-got:
			if len(ev.Args) != 1 || ev.Args[0] != "ok" {
				t.Fatalf("event %v, want [ok] (the refused one never published)", ev.Args)
			}
		case <-ctx.Done():
			t.Fatal("a subscriber did not get the well-formed event")
		}
	}
	for _, s := range subs {
		if _, err := s.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
			t.Fatalf("a JSON subscriber's session: %v", err)
		}
	}
}

// TestInProcessPayloadChecked: startCall and publish check a payload no
// request's goroutine checked (callReq/pubReq.checkWAMP), so that a
// gateway path that forgets to cannot send a JSON peer a binary string it
// cannot decode; the refusal is the bridge's 400.
func TestInProcessPayloadChecked(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	s, a, p := e.gw.pool.acquire(identity{realm: "realm1", authrole: "anonymous", method: "anonymous"}, "127.0.0.1:1")
	if p != nil {
		t.Fatal(p.detail)
	}
	defer e.gw.pool.release(a)
	bad := []byte(`["\u0000!!!!"]`)
	res, c := e.gw.call(context.Background(), s, &callReq{uri: "com.rev.nobody", args: bad, timeout: time.Second})
	recycle(c)
	if got := e.gw.callProblem(res, map[string]int{proto.URIInvalidArgument: 422}); got.status != http.StatusBadRequest || got.uri != proto.URIInvalidArgument {
		t.Fatalf("unchecked CALL: %d %s %s, want 400 %s", got.status, got.uri, got.detail, proto.URIInvalidArgument)
	}
	r := e.gw.runSync(s, func() *syncReply { return s.publish(&pubReq{uri: "com.rev.news", kwargs: []byte(`{"k":"\u0000AQI"}`)}) })
	if got := e.gw.problemOf(r, nil); r.typ != proto.CodeError || got.status != http.StatusBadRequest || got.uri != proto.URIInvalidArgument {
		t.Fatalf("unchecked PUBLISH: %v %d %s, want 400 %s", r.typ, got.status, got.uri, proto.URIInvalidArgument)
	}
}

// TestRouteHeaderPointerAnyCase: a route's pointer into the request's
// headers finds the header whatever the case of the name it is written
// with ("$/headers/X-Trace"), as header names are case-insensitive: the
// headers are keyed in lower case, and before, a pointer written with
// capitals never found its header, the route answering every request
// 400 "the request lacks /headers/X-Trace".
func TestRouteHeaderPointerAnyCase(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "trace", Method: "GET", Path: "/trace", Realm: "realm1", Call: "com.trace",
			Kwargs: map[string]any{"trace": "$/headers/X-Trace", "agent": "$/headers/x-agent?", "req": "$/headers/X-REQUEST-ID?"}}}
	})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.trace", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Kwargs: inv.Kwargs}, nil
	})
	r, body := e.do("GET", "/trace", "", "x-trace", "t-1", "X-Agent", "a-1", "X-Request-Id", "r-1")
	if r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, body)
	}
	var res struct{ Kwargs map[string]any }
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Kwargs["trace"] != "t-1" || res.Kwargs["agent"] != "a-1" || res.Kwargs["req"] != "r-1" {
		t.Fatalf("kwargs %v, want trace t-1, agent a-1, req r-1", res.Kwargs)
	}
	r, body = e.do("GET", "/trace", "")
	if p := expectProblem(t, r, body, 400, proto.URIInvalidArgument); !strings.Contains(p.Detail, "x-trace") {
		t.Fatalf("detail %q does not name the missing header", p.Detail)
	}
}
