package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSSESlowReaderCut: a client that stops reading its event stream is
// cut once its bounded queue fills; a reader of the same topic that keeps
// up gets every event; the gateway does not buffer without limit.
func TestSSESlowReaderCut(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEBuffer = 512 << 10
		o.Limits.WriteTimeout = time.Second
	})
	// The slow client: a tiny receive buffer, and it never reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := d.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /wamp/realm1/events/com.big HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, fast := e.stream(ctx, "GET", "/wamp/realm1/events/com.big", "")
	waitFor(t, "two streams", func() bool { return e.gw.streams.Load() == 2 })
	pub := e.dial("realm1", proto.MsgPack)
	payload := strings.Repeat("z", 16<<10)
	// 400 events of 16 KiB (6.4 MB), in bursts the fast reader keeps up
	// with: the slow stream's 512 KiB and its socket buffers fill long
	// before the end.
	const n, burst = 400, 10
	for i := 0; i < n; i += burst {
		for j := i; j < i+burst; j++ {
			if err := pub.Publish(ctx, "com.big", []any{j, payload}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
		for j := i; j < i+burst; j++ {
			ev, err := fast.next()
			if err != nil {
				t.Fatalf("the fast reader's stream ended at event %d: %v", j, err)
			}
			if !strings.HasPrefix(ev.data, `{"topic":"com.big","publication":`) || !strings.Contains(ev.data, fmt.Sprintf(`"args":[%d,`, j)) {
				t.Fatalf("event %d: %.80s", j, ev.data)
			}
		}
	}
	waitFor(t, "the slow stream cut", func() bool { return e.gw.metrics.sseCut.Load() == 1 && e.gw.streams.Load() == 1 })
}

// TestStreamLimits: per-client and total SSE stream caps.
func TestStreamLimits(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxStreamsPerClient = 3
		o.Limits.MaxStreams = 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		r, _ := e.stream(ctx, "GET", fmt.Sprintf("/wamp/realm1/events/com.s%d", i), "")
		if r.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, r.StatusCode)
		}
	}
	r, body := e.do("GET", "/wamp/realm1/events/com.s9", "")
	p := expectProblem(t, r, body, 503, proto.URIUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %+v", p)
	}
	e.gw.opts.Limits.MaxStreams = 10 // now the per-client cap bites
	r, body = e.do("GET", "/wamp/realm1/events/com.s9", "")
	expectProblem(t, r, body, 429, URITooManyRequests)
}

// TestIdentityFlood: many principals cannot make the gateway hold more
// than MaxSessions sessions; idle principals' sessions make room; when all
// are busy the request gets 503; one principal's concurrent requests are
// capped (429); the requests of others keep being served.
func TestIdentityFlood(t *testing.T) {
	const keys = 12
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxSessions = 4
		o.Limits.SessionsPerIdentity = 1
		o.Limits.MaxInFlightPerIdentity = 2
		for i := 0; i < keys; i++ {
			o.APIKeys = append(o.APIKeys, APIKey{Name: fmt.Sprint("k", i), Key: fmt.Sprintf("key-%02d-0123456789abcdef", i), Realm: "realm1", AuthID: fmt.Sprint("user", i), Role: "r"})
		}
	})
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	e.register(callee, "com.block", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &client.Result{Args: []any{inv.CallerAuthID}}, nil
	})
	e.register(callee, "com.quick", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	})
	key := func(i int) string { return fmt.Sprintf("key-%02d-0123456789abcdef", i) }
	// Sequential requests by every principal: sessions are recycled.
	for i := 0; i < keys; i++ {
		r, body := e.do("POST", "/wamp/realm1/call/com.quick", `{}`, "X-API-Key", key(i))
		if r.StatusCode != 200 {
			t.Fatalf("principal %d: %d %s", i, r.StatusCode, body)
		}
		if n := e.gw.pool.sessions(); n > 4 {
			t.Fatalf("%d gateway sessions, cap 4", n)
		}
	}
	// Four principals busy: a fifth gets 503.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e.do("POST", "/wamp/realm1/call/com.block", `{}`, "X-API-Key", key(i))
		}(i)
	}
	waitFor(t, "four calls in flight", func() bool { return e.gw.inflight.Load() == 4 })
	r, body := e.do("POST", "/wamp/realm1/call/com.quick", `{}`, "X-API-Key", key(5))
	expectProblem(t, r, body, 503, proto.URIUnavailable)
	// A busy principal's third concurrent request: 429.
	wg.Add(1)
	go func() { defer wg.Done(); e.do("POST", "/wamp/realm1/call/com.block", `{}`, "X-API-Key", key(0)) }()
	waitFor(t, "five calls in flight", func() bool { return e.gw.inflight.Load() == 5 })
	r, body = e.do("POST", "/wamp/realm1/call/com.quick", `{}`, "X-API-Key", key(0))
	expectProblem(t, r, body, 429, URITooManyRequests)
	close(release)
	wg.Wait()
	r, body = e.do("POST", "/wamp/realm1/call/com.quick", `{}`, "X-API-Key", key(5))
	if r.StatusCode != 200 {
		t.Fatalf("after the flood: %d %s", r.StatusCode, body)
	}
	if n := e.gw.pool.sessions(); n > 4 {
		t.Fatalf("%d gateway sessions, cap 4", n)
	}
}

// TestAuthFailureLimit: an address that keeps failing is refused without
// its credentials being checked, for a while.
func TestAuthFailureLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = 5
		o.APIKeys = []APIKey{{Name: "k", Key: "good-key-0123456789", Realm: "realm1", AuthID: "u", Role: "r"}}
	})
	for i := 0; i < 5; i++ {
		r, body := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "X-API-Key", fmt.Sprintf("guess-%d-0123456789", i))
		expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	}
	r, body := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "X-API-Key", "good-key-0123456789")
	expectProblem(t, r, body, 429, URITooManyRequests)
}

// TestAuthFailureLimitExempt: an address in AuthFailuresExempt
// (limits.auth_failures.exempt, as the WAMP and OAuth2 limiters take it) is
// never locked out: past the threshold of wrong keys its right key is still
// served. Before, the gateway's limiter ignored the list, so a trusted
// service behind an exempt network got 429 for the lockout.
func TestAuthFailureLimitExempt(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.AuthFailures = 3
		o.AuthFailuresExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		o.APIKeys = []APIKey{{Name: "k", Key: "good-key-0123456789", Realm: "realm1", AuthID: "u", Role: "r"}}
	})
	for i := 0; i < 6; i++ {
		r, body := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "X-API-Key", fmt.Sprintf("guess-%d-0123456789", i))
		expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	}
	r, body := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "X-API-Key", "good-key-0123456789")
	if r.StatusCode/100 != 2 {
		t.Fatalf("the exempt address's right key: %d %s", r.StatusCode, body)
	}
}

// TestShutdown: Shutdown ends SSE streams (a problem event saying so)
// and closes the gateway's WAMP sessions; the router then has none of
// them left.
func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.t", "")
	r, _ := e.do("POST", "/wamp/realm1/publish/com.t", `{"options":{"acknowledge":true}}`)
	if r.StatusCode != 200 {
		t.Fatal(r.StatusCode)
	}
	sse.next()
	e.hc.CloseIdleConnections()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	start := time.Now()
	if err := e.gw.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	// Its last event says why it ends.
	if ev, err := sse.next(); err != nil || ev.event != "problem" || !strings.Contains(ev.data, proto.URISystemShutdown) {
		t.Fatalf("the stream's last event at Shutdown: %+v %v, want a problem with %s", ev, err, proto.URISystemShutdown)
	}
	if _, err := sse.next(); err == nil {
		t.Fatal("the stream goes on after Shutdown")
	}
	waitFor(t, "the gateway's sessions gone", func() bool {
		for _, rs := range e.r.SessionsByRealm() {
			if rs.ByTransport["http"] > 0 {
				return false
			}
		}
		return true
	})
	if err := e.gw.Start(); err != ErrClosed {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	// On its own listener: refused. On the event loops' HTTP lane, which
	// the engine serves until its own shutdown: 503 system_shutdown, not
	// a connection closed without an answer.
	if resp, err := http.Get(e.base + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), proto.URISystemShutdown) {
			t.Fatalf("served after Shutdown: %d %s", resp.StatusCode, body)
		}
	}
}

// TestStreamEndsAtTokenExpiry: an event stream opened with a bearer token
// ends when the token expires.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	laneFree(t)
	iss := newJWTIssuer(t)
	e := newEnv(t, func(o *Options) { o.Bearer = &jwtVerifier{set: iss.set, issuer: "https://edgewamp.test"} })
	tok := iss.token("alice", "realm1", "user", "", 1500*time.Millisecond, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, sse := e.stream(ctx, "GET", "/wamp/realm1/events/com.t?access_token="+tok, "")
	if r.StatusCode != 200 {
		t.Fatalf("stream with a token in the query: %d", r.StatusCode)
	}
	start := time.Now()
	ev, err := sse.next()
	if err != nil || ev.event != "problem" || !strings.Contains(ev.data, proto.URIAuthenticationFailed) {
		t.Fatalf("at expiry: %+v %v", ev, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("ended after %v", d)
	}
	if _, err := sse.next(); err == nil {
		t.Fatal("the stream goes on after the expiry")
	}
}

// TestSessionsKilled: when the router kills the gateway's sessions
// (meta API, reload), requests get new ones, and the gateway's count of
// sessions stays the router's.
func TestSessionsKilled(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.dial("realm1", proto.JSON)
	e.register(admin, "com.ping", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"pong"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	httpSessions := func() int {
		n := 0
		for _, rs := range e.r.SessionsByRealm() {
			n += rs.ByTransport["http"]
		}
		return n
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 6; i++ {
			if r, body := e.do("POST", "/wamp/realm1/call/com.ping", `{}`); r.StatusCode != 200 {
				t.Fatalf("round %d: %d %s", round, r.StatusCode, body)
			}
		}
		if _, err := admin.Call(ctx, "wamp.session.kill_by_authrole", []any{"anonymous"}, nil, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the killed sessions gone", func() bool { return httpSessions() == 0 && e.gw.pool.sessions() == 0 })
	}
	if r, body := e.do("POST", "/wamp/realm1/call/com.ping", `{}`); r.StatusCode != 200 {
		t.Fatalf("after the kills: %d %s", r.StatusCode, body)
	}
	if a, b := e.gw.pool.sessions(), httpSessions(); a != b {
		t.Fatalf("gateway counts %d sessions, the router %d", a, b)
	}
}

// flakyListener fails its first accepts with errs, then accepts for real.
type flakyListener struct {
	net.Listener
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: err}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfBuffers: an accept that fails with ENOBUFS or ENOMEM
// (which net/http's Serve does not retry) pauses the listener instead of
// stopping the gateway; the connection behind it is served.
func TestAcceptOutOfBuffers(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(&flakyListener{Listener: inner, errs: []error{syscall.ENOBUFS, syscall.ENOMEM, syscall.ENOBUFS}}, 4)
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") })}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer srv.Close()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + inner.Addr().String() + "/")
	if err != nil {
		t.Fatalf("not served after the failed accepts: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "served" {
		t.Fatalf("answer %q", b)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned: %v", err)
	default:
	}
}

// chunkReader hands out its bytes step at a time, then err.
type chunkReader struct {
	b    []byte
	step int
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b[:min(r.step, len(r.b))])
	r.b = r.b[n:]
	return n, nil
}

// A body's buffer grows as its bytes arrive, never past what the head
// declared: a head declaring 1 MiB and sending 100 bytes holds 16 KiB, not
// 1 MiB. Before, the gateway allocated Content-Length at once, before
// authentication: 200 connections that sent a head only grew the heap by
// 203 MiB, and 250 kept the collector running back to back under the
// process's memory limit.
func TestBodyBufferGrowsWithBytes(t *testing.T) {
	b, err := readGrowing(&chunkReader{b: make([]byte, 100), step: 7, err: io.EOF}, 1<<20)
	if err != io.ErrUnexpectedEOF || len(b) != 100 || cap(b) > 16<<10 {
		t.Fatalf("a 1 MiB body cut after 100 bytes: %d bytes, capacity %d, %v", len(b), cap(b), err)
	}
	want := make([]byte, 100_000)
	for i := range want {
		want[i] = byte(i)
	}
	b, err = readGrowing(&chunkReader{b: want, step: 4093, err: io.EOF}, int64(len(want)))
	if err != nil || !bytes.Equal(b, want) || cap(b) != len(want) {
		t.Fatalf("a whole body: %d bytes (equal %v), capacity %d, %v", len(b), bytes.Equal(b, want), cap(b), err)
	}
	b, err = readGrowing(&chunkReader{b: want[:10], step: 10, err: errors.New("reset")}, 100)
	if err == nil || err == io.ErrUnexpectedEOF || len(b) != 10 {
		t.Fatalf("a read error: %d bytes, %v", len(b), err)
	}
}

// max_sessions holds when many principals' first requests arrive at once:
// a session was counted only once it opened, after the check, and 48 API
// keys calling at once opened up to 42 sessions against max_sessions 4.
// Past it a principal without a session is refused 503 (none of the
// others is idle to make room for it).
func TestMaxSessionsConcurrentPrincipals(t *testing.T) {
	const keys = 48
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxSessions = 4
		o.Limits.SessionsPerIdentity = 1
		for i := 0; i < keys; i++ {
			o.APIKeys = append(o.APIKeys, APIKey{Name: fmt.Sprintf("k%d", i), Key: fmt.Sprintf("limit-key-%08d", i), Realm: "realm1", AuthID: fmt.Sprintf("p%d", i), Role: "anonymous"})
		}
	})
	release := make(chan struct{})
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.hold", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return &client.Result{}, nil
	})
	var wg sync.WaitGroup
	var ok503 atomic.Int64
	start := make(chan struct{})
	for i := 0; i < keys; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", e.base+"/wamp/realm1/call/com.hold", strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", fmt.Sprintf("limit-key-%08d", i))
			resp, err := e.hc.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 503 {
					ok503.Add(1)
				}
			}
		}(i)
	}
	close(start)
	maxSeen := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		maxSeen = max(maxSeen, e.gw.pool.sessions())
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if maxSeen > 4 || ok503.Load() == 0 {
		t.Fatalf("max_sessions 4, sessions_per_identity 1: %d sessions open at most, %d requests refused", maxSeen, ok503.Load())
	}
}

// A client whose address carries an IPv6 zone (a link-local peer:
// net/http's RemoteAddr is then [fe80::1%eth0]:port) is exempt when its
// network is in AuthFailuresExempt, as the WAMP limiter has it (it drops
// the zone). Before, netip.Prefix.Contains is false for any address with
// a zone: such a client, exempt on WAMP, was counted and locked out on
// the gateway.
func TestAuthFailureLimitExemptZonedAddress(t *testing.T) {
	g := &Server{opts: Options{AuthFailuresExempt: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}}}
	for _, ra := range []string{"[fe80::1%eth0]:40000", "fe80::1%eth0", "[fe80::1]:40000"} {
		r := &http.Request{RemoteAddr: ra}
		if !g.authExempt(r) {
			t.Errorf("%s: not exempt in fe80::/10", ra)
		}
	}
	if g.authExempt(&http.Request{RemoteAddr: "[2001:db8::1%eth0]:40000"}) {
		t.Error("2001:db8::1 (zoned) exempt in fe80::/10")
	}
}
