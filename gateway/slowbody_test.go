package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/proto"
)

// slowBodyCase is a request whose declared body (under net/http's 256 KiB
// it reads after a handler) never comes: one byte of it is sent.
type slowBodyCase struct {
	name, head string
	open       bool // an event stream: the answer is its head, the connection stays
}

// checkSlowBodies sends each case on its own connection, all at once
// (not as parallel subtests: -parallel is GOMAXPROCS), and checks that
// each is answered, and its connection then closed, within limit: not
// held for as long as the client likes.
func checkSlowBodies(t *testing.T, e *env, limit time.Duration, cases []slowBodyCase) {
	var wg sync.WaitGroup
	for _, c := range cases {
		conn := e.dialGateway(t, limit)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.WriteString(conn, c.head+"x"); err != nil {
				t.Errorf("%s: %v", c.name, err)
				return
			}
			start := time.Now()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("%s: no answer after %v: %v", c.name, time.Since(start).Round(100*time.Millisecond), err)
				return
			}
			t.Logf("%s: %d after %v, close %v", c.name, resp.StatusCode, time.Since(start).Round(time.Millisecond), resp.Close)
			if c.open {
				return
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Errorf("%s: %d answered, but the connection still held after %v: %v", c.name, resp.StatusCode, time.Since(start).Round(100*time.Millisecond), err)
			}
		}()
	}
	wg.Wait()
}

// TestUnreadSlowBodyAnswered: a request to an endpoint that does not read
// its body, whose declared body never comes, is answered and its
// connection closed within body_timeout (with the lane: after its 1 s
// grace, when net/http takes the connection). net/http reads an unread
// body before it writes the answer, and the server has no ReadTimeout:
// with body_timeout applied only inside readBody, /healthz, a 415 made
// before the body is read, an event stream and a mux redirect never
// answered, the connection held past body_timeout and idle_timeout (found
// by review); a 408 from readBody was answered, but its connection held
// (readBody cleared the deadline after the timeout, and net/http read on).
func TestUnreadSlowBodyAnswered(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.BodyTimeout = time.Second
		o.Limits.IdleTimeout = 2 * time.Second
	})
	// Meanwhile, a body read whole keeps its connection and leaves no
	// deadline behind: the connection's next request, past body_timeout,
	// is answered.
	kept := make(chan error, 1)
	conn := e.dialGateway(t, 10*time.Second)
	go func() {
		br := bufio.NewReader(conn)
		for i := 0; i < 2; i++ {
			if i == 1 {
				time.Sleep(1200 * time.Millisecond) // past body_timeout, within idle_timeout
			}
			io.WriteString(conn, "POST /wamp/realm1/publish/com.t HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusAccepted || resp.Close {
				kept <- fmt.Errorf("publication %d with its body: %v %v", i, resp, err)
				return
			}
			resp.Body.Close()
		}
		kept <- nil
	}()
	checkSlowBodies(t, e, 3500*time.Millisecond, []slowBodyCase{
		{name: "healthz", head: "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n"},
		{name: "415 before the body", head: "POST /wamp/realm1/publish/com.t HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"},
		{name: "events", head: "GET /wamp/realm1/events/com.t HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n", open: true},
		{name: "mux redirect", head: "POST /x/../healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n"},
		{name: "408", head: "POST /wamp/realm1/call/com.t HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"},
	})
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
}

// TestOAuthFormSlowBodyBounded: the OAuth2 server's form endpoints, mounted
// on the gateway as cmd mounts them, read their body with ParseForm, which
// no deadline bounded: a declared form that never came held the
// connection and the handler for as long as the client liked (found by
// review). The body watch bounds them as the gateway's own endpoints.
func TestOAuthFormSlowBodyBounded(t *testing.T) {
	h, err := oauth.HashSecret("backend-secret-0123456789", 1000)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oauth.New(oauth.Options{
		Issuer: "http://localhost",
		Realms: []oauth.Realm{{Name: "realm1", Grants: []string{oauth.GrantClientCredentials},
			Clients: []oauth.Client{{ID: "backend", SecretHash: h, Roles: []string{"service"}, Grants: []string{oauth.GrantClientCredentials}}}}},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := newEnv(t, func(o *Options) {
		o.Limits.BodyTimeout = time.Second
		o.Limits.IdleTimeout = 2 * time.Second
		o.Mount = map[string]http.Handler{"/oauth/": srv.Handler()}
	})
	form := func(path string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
	}
	checkSlowBodies(t, e, 3500*time.Millisecond, []slowBodyCase{
		{name: "token", head: form("/oauth/token")},
		{name: "revoke", head: form("/oauth/revoke")},
		{name: "device page", head: form("/oauth/device")},
		{name: "login page", head: form("/oauth/authorize")},
		{name: "405", head: strings.Replace(form("/oauth/token"), "POST", "PUT", 1)},
	})
}

// TestGetRouteWithBodyClientGoneCancels: a GET route's call whose request
// carries a body (the route uses none) is canceled when its client closes
// the connection, as a call without one is, and holds no in-flight slot
// after. net/http watches for the client's going away only once the body
// is read to its end, and the route left it unread: the call ran on to
// its timeout (here 5 s), for nobody.
func TestGetRouteWithBodyClientGoneCancels(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "hang", Method: "GET", Path: "/hang", Realm: "realm1", Call: "com.hang", Timeout: 5 * time.Second, BodyLimit: 64}}
	})
	callee := e.dial("realm1", proto.JSON)
	started := make(chan struct{}, 1)
	canceled := make(chan struct{}, 1)
	e.register(callee, "com.hang", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		canceled <- struct{}{}
		return nil, ctx.Err()
	})
	for _, c := range []struct{ name, req string }{
		{"without a body", "GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"with a body", "GET /hang HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx"},
		{"chunked", "GET /hang HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"},
	} {
		conn := e.dialGateway(t, 10*time.Second)
		io.WriteString(conn, c.req)
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the call never reached the callee", c.name)
		}
		conn.Close()
		select {
		case <-canceled:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the call was not canceled within 2 s of its client leaving (the route's timeout is 5 s)", c.name)
		}
		waitWithin(t, 2*time.Second, c.name+": no request in flight", func() bool { return e.gw.inflight.Load() == 0 })
	}
	// A body past the route's limit is refused, not read on.
	r, body := e.do("GET", "/hang", strings.Repeat("x", 1000))
	expectProblem(t, r, body, http.StatusRequestEntityTooLarge, proto.URIPayloadSizeExceeded)
}

// TestCallNotMadeForClientAlreadyGone: a request whose client went away
// while it waited for its turn (here behind the pool's lock; in earnest,
// a session of its principal opening, up to 10 s) makes no call: before,
// the CALL went out and a CANCEL after it, so that the callee was invoked
// for nobody (and one that does not announce call canceling ran the call
// to its end).
func TestCallNotMadeForClientAlreadyGone(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "count", Method: "POST", Path: "/count", Realm: "realm1", Call: "com.count"}}
	})
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.count", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{}, nil
	})
	for _, accept := range []string{"", "Accept: text/event-stream\r\n"} { // a plain call, a streamed one
		e.gw.pool.mu.Lock()
		locked := true
		unlock := func() {
			if locked {
				locked = false
				e.gw.pool.mu.Unlock()
			}
		}
		t.Cleanup(unlock) // when a check below fails with the lock held
		conn := e.dialGateway(t, 10*time.Second)
		io.WriteString(conn, "POST /count HTTP/1.1\r\nHost: localhost\r\n"+accept+"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		waitWithin(t, 5*time.Second, "the request admitted", func() bool { return e.gw.inflight.Load() == 1 || e.gw.streams.Load() == 1 })
		conn.Close()
		time.Sleep(500 * time.Millisecond) // net/http sees the connection closed (at once: its background read)
		unlock()
		waitWithin(t, 5*time.Second, "no request in flight", func() bool { return e.gw.inflight.Load() == 0 && e.gw.streams.Load() == 0 })
		time.Sleep(300 * time.Millisecond) // an INVOCATION on its way would reach the callee
		if n := invoked.Load(); n != 0 {
			t.Fatalf("%q: the callee was invoked %d times for a client gone before its call was made", accept, n)
		}
	}
	r, body := e.do("POST", "/count", `{}`)
	if r.StatusCode != 200 || invoked.Load() != 1 {
		t.Fatalf("a call afterwards: %d %s, callee invoked %d times", r.StatusCode, body, invoked.Load())
	}
}
