package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// SSE streams whose credential a revocation or a configuration reload
// takes away (grant.go): event streams and calls streaming their
// progressive results end with a problem event, their calls are canceled
// at the router, and nothing stays behind; streams whose credential the
// reload leaves alone go on.

// tickCallee registers proc on an anonymous WAMP session of realm: each
// invocation sends a progressive result every 20 ms until the router
// interrupts it (interrupted then receives) or the session ends.
func tickCallee(t *testing.T, e *env, realm, proc string) <-chan struct{} {
	t.Helper()
	interrupted := make(chan struct{}, 64)
	callee := e.dial(realm, proto.JSON)
	e.register(callee, proc, func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 0; ; i++ {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
			select {
			case <-ctx.Done():
				if context.Cause(ctx) == client.ErrInterrupted {
					interrupted <- struct{}{}
				}
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	return interrupted
}

// sseOpen opens an SSE request that must be answered 200; leave makes its
// client go away.
func sseOpen(t *testing.T, e *env, method, path, body string, hdr ...string) (rd *sseReader, leave func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	resp, rd := e.stream(ctx, method, path, body, hdr...)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return rd, cancel
}

// openTicks starts a streamed call of a tickCallee procedure and waits for
// its first progressive result.
func openTicks(t *testing.T, e *env, path string, hdr ...string) (rd *sseReader, leave func()) {
	t.Helper()
	rd, leave = sseOpen(t, e, "POST", path, `{"options":{"timeout":120000}}`, hdr...)
	nextEvent(t, rd, "progress", path)
	return rd, leave
}

// nextEvent reads rd's next event, which must be named name ("" for an
// event stream's events).
func nextEvent(t *testing.T, rd *sseReader, name, what string) sseEvent {
	t.Helper()
	ch := make(chan sseEvent, 1)
	errc := make(chan error, 1)
	go func() {
		ev, err := rd.next()
		if err != nil {
			errc <- err
			return
		}
		ch <- ev
	}()
	select {
	case ev := <-ch:
		if ev.event != name {
			t.Fatalf("%s: event %q %s, want %q", what, ev.event, ev.data, name)
		}
		return ev
	case err := <-errc:
		t.Fatalf("%s: the stream ended: %v", what, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no event", what)
	}
	return sseEvent{}
}

// ending is a problem a stream may end with: its status, its error URI
// and a part of its detail.
type ending struct {
	status      int
	uri, detail string
}

// expectEnded reads rd to its end, which must come within 10 s, and
// returns its last event, which must be a problem as one of want.
func expectEnded(t *testing.T, rd *sseReader, what string, want ...ending) problemDoc {
	t.Helper()
	done := make(chan sseEvent, 1)
	go func() {
		var last sseEvent
		for {
			ev, err := rd.next()
			if err != nil {
				done <- last
				return
			}
			last = ev
		}
	}()
	var ev sseEvent
	select {
	case ev = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the stream stays open", what)
	}
	var p problemDoc
	if ev.event != "problem" || json.Unmarshal([]byte(ev.data), &p) != nil {
		t.Fatalf("%s: the stream ended with %q %q, want a problem event", what, ev.event, ev.data)
	}
	for _, w := range want {
		if p.Status == w.status && p.Error == w.uri && strings.Contains(p.Detail, w.detail) {
			return p
		}
	}
	t.Fatalf("%s: problem %+v, want one of %+v", what, p, want)
	return p
}

// waitInterrupted waits for the tickCallee's invocation of a call whose
// stream ended to be interrupted: the router canceled the call.
func waitInterrupted(t *testing.T, interrupted <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-interrupted:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the callee was not interrupted: it goes on producing for a stream that ended", what)
	}
}

// publish publishes args to topic of realm as an anonymous WAMP client.
func publish(t *testing.T, e *env, realm, topic string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.dial(realm, proto.JSON).Publish(ctx, topic, args, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
}

// pooledHeld returns the pending calls and the subscriptions the
// gateway's pooled sessions hold (read on their shards).
func pooledHeld(e *env) (calls, subs int) {
	var ss []*sess
	e.gw.pool.mu.Lock()
	for _, ip := range e.gw.pool.ids {
		for _, sl := range ip.slots {
			if sl == nil {
				continue
			}
			if s := readySess(sl); s != nil {
				ss = append(ss, s)
			}
		}
	}
	e.gw.pool.mu.Unlock()
	for _, s := range ss {
		ch := make(chan [2]int, 1)
		if s.q.post(func() { ch <- [2]int{len(s.calls), len(s.subs)} }) != nil {
			continue
		}
		n := <-ch
		calls += n[0]
		subs += n[1]
	}
	return calls, subs
}

// sseHandlers counts the goroutines running an SSE handler.
func sseHandlers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "gateway.(*Server).serveEvents(") + strings.Count(string(buf), "gateway.(*Server).streamCall(")
}

// watched returns the streams the gateway watches, and the revocation
// ids it indexes them under.
func watched(e *env) (streams, ids int) {
	e.gw.grantMu.Lock()
	defer e.gw.grantMu.Unlock()
	return len(e.gw.grants), len(e.gw.bearers)
}

// settled waits until the gateway holds nothing for SSE clients: no
// stream open or watched, no request in flight, no byte queued, no call
// pending or subscription on its pooled sessions, no handler running.
func settled(t *testing.T, e *env) {
	t.Helper()
	waitFor(t, "the gateway to let every stream go", func() bool {
		calls, subs := pooledHeld(e)
		streams, ids := watched(e)
		return e.gw.streams.Load() == 0 && e.gw.inflight.Load() == 0 && e.gw.sse.bytes.Load() == 0 &&
			calls == 0 && subs == 0 && streams == 0 && ids == 0 && sseHandlers() == 0
	})
}

// TestSSECallEndsWhenBearerRevoked: a call streaming its progressive
// results went on after the bearer token that started it was revoked,
// for as long as the call (RevokeBearer ended event streams only), and
// its callee went on producing. Now its stream ends with a problem event,
// the call is canceled at the router (its callee interrupted), and a call
// of another token goes on.
func TestSSECallEndsWhenBearerRevoked(t *testing.T) {
	laneFree(t)
	v := newRevocableVerifier()
	e := newEnv(t, func(o *Options) {
		o.Bearer = v
		o.Realms[0].Anonymous = false
	})
	interrupted := tickCallee(t, e, "realm1", "com.tick")
	gone, _ := openTicks(t, e, "/wamp/realm1/call/com.tick", "Authorization", "Bearer tok-a")
	stays, leave := openTicks(t, e, "/wamp/realm1/call/com.tick", "Authorization", "Bearer tok-b")

	v.revoke("a")
	e.gw.RevokeBearer([]string{"a"})
	expectEnded(t, gone, "the revoked token's call", ending{401, proto.URIAuthenticationFailed, "the token was revoked"})
	waitInterrupted(t, interrupted, "the revoked token's call")
	for range 3 {
		nextEvent(t, stays, "progress", "the other token's call")
	}
	if n := metricValue(t, e, "edgewamp_gateway_sse_withdrawn_total"); n != "1" {
		t.Errorf("edgewamp_gateway_sse_withdrawn_total = %q, want 1", n)
	}
	leave()
	settled(t, e)
}

// TestSSEEndsWhenReloadWithdrawsBearer: a configuration reload that takes
// a token's client (or its principal, or its role) away ended none of the
// SSE streams opened with it: they went on until the token expired, or
// for as long as the call. Now the reload (SetRealms) asks the verifier
// again: those streams end with a problem saying why, their calls are
// canceled, a stream opened with the token afterwards is refused, and the
// streams of a token the reload leaves alone go on, as every stream does
// through a reload that changes nothing.
func TestSSEEndsWhenReloadWithdrawsBearer(t *testing.T) {
	laneFree(t)
	v := newRevocableVerifier()
	e := newEnv(t, func(o *Options) {
		o.Bearer = v
		o.Realms[0].Anonymous = false
		o.Routes = []Route{{Method: "POST", Path: "/ticks", Realm: "realm1", Call: "com.tick", Auth: Auth{Type: "bearer"}, Timeout: time.Minute}}
	})
	interrupted := tickCallee(t, e, "realm1", "com.tick")
	const events, call = "/wamp/realm1/events/com.news", "/wamp/realm1/call/com.tick"
	aEvents, _ := sseOpen(t, e, "GET", events, "", "Authorization", "Bearer tok-a")
	aCall, _ := openTicks(t, e, call, "Authorization", "Bearer tok-a")
	aRoute, _ := openTicks(t, e, "/ticks", "Authorization", "Bearer tok-a") // a route's streamed call
	bEvents, leaveB1 := sseOpen(t, e, "GET", events, "", "Authorization", "Bearer tok-b")
	bCall, leaveB2 := openTicks(t, e, call, "Authorization", "Bearer tok-b")
	flowing := func(what string, rds ...*sseReader) {
		t.Helper()
		publish(t, e, "realm1", "com.news", what)
		for i, rd := range rds {
			if i%2 == 0 {
				if ev := nextEvent(t, rd, "", what); !strings.Contains(ev.data, what) {
					t.Fatalf("%s: event %s", what, ev.data)
				}
			} else {
				nextEvent(t, rd, "progress", what)
			}
		}
	}

	e.gw.SetRealms(e.gw.opts.Realms) // a reload that changes nothing
	flowing("after a reload that changes nothing", aEvents, aCall, bEvents, bCall)
	nextEvent(t, aRoute, "progress", "the route's call after a reload that changes nothing")

	v.withdraw("a", "the client was removed") // what the reload does to the token
	e.gw.SetRealms(e.gw.opts.Realms)
	withdrawn := ending{401, proto.URIAuthenticationFailed, "the client was removed"}
	expectEnded(t, aEvents, "the event stream of a withdrawn token", withdrawn)
	expectEnded(t, aCall, "the streamed call of a withdrawn token", withdrawn)
	expectEnded(t, aRoute, "the route's streamed call of a withdrawn token", withdrawn)
	waitInterrupted(t, interrupted, "the streamed call of a withdrawn token")
	waitInterrupted(t, interrupted, "the route's streamed call of a withdrawn token")
	flowing("after a reload that withdraws another token", bEvents, bCall)

	// Verified (this verifier still takes it) but withdrawn by the time
	// the stream opens: refused, as a revoked one is.
	for _, req := range [][2]string{{"GET", events}, {"POST", call}} {
		r, body := e.do(req[0], req[1], "", "Authorization", "Bearer tok-a", "Accept", "text/event-stream")
		if p := expectProblem(t, r, body, 401, proto.URIAuthenticationFailed); !strings.Contains(p.Detail, "the client was removed") {
			t.Fatalf("%s %s with a withdrawn token: %s", req[0], req[1], body)
		}
	}
	if n := metricValue(t, e, "edgewamp_gateway_sse_withdrawn_total"); n != "3" {
		t.Errorf("edgewamp_gateway_sse_withdrawn_total = %q, want 3", n)
	}
	leaveB1()
	leaveB2()
	settled(t, e)
}

// realm1 is the router's realm1, with anonymous sessions or without
// (then with ticket authentication: a realm without authenticators is
// anonymous).
func realm1(anonymous bool) route.RealmConfig {
	if anonymous {
		return route.RealmConfig{Name: "realm1", Anonymous: true}
	}
	return route.RealmConfig{Name: "realm1", Authenticators: []route.Authenticator{&route.TicketAuth{}}}
}

// reloadRealms is what cmd's reload does: the router's realms, then the
// gateway's.
func reloadRealms(t *testing.T, e *env, realms []route.RealmConfig, access []RealmAccess) {
	t.Helper()
	if err := e.r.Reload(realms); err != nil {
		t.Fatal(err)
	}
	e.gw.SetRealms(access)
}

// TestSSEEndsWhenReloadTakesAccessAway: a reload that no longer grants a
// role the HTTP bridge (an API key's role here), refuses requests without
// credentials, or turns a realm's bridge off ended none of the streams
// opened that way. Now they end, each with a problem saying why, their
// calls canceled; the streams of principals it leaves alone go on.
func TestSSEEndsWhenReloadTakesAccessAway(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{
			{Name: "alice", Key: "alice-key-0123456789", Realm: "secure", AuthID: "alice", Role: "user"},
			{Name: "bob", Key: "bob-key-0123456789ab", Realm: "secure", AuthID: "bob", Role: "svc"},
		}
		o.Realms[1].BridgeRoles = []string{"user", "svc"}
	})
	access := func(mutate func([]RealmAccess)) []RealmAccess {
		ra := []RealmAccess{
			{Name: "realm1", Bridge: true, Anonymous: true, AnonymousRole: "anonymous"},
			{Name: "secure", Bridge: true, Security: true, BridgeRoles: []string{"user", "svc"}},
		}
		if mutate != nil {
			mutate(ra)
		}
		return ra
	}
	realms := func(anonymous bool) []route.RealmConfig {
		return []route.RealmConfig{realm1(anonymous), secureRealm()}
	}
	secureTicks := tickCallee(t, e, "secure", "com.ok.tick")
	realm1Ticks := tickCallee(t, e, "realm1", "com.tick")
	alice, bob := []string{"X-API-Key", "alice-key-0123456789"}, []string{"X-API-Key", "bob-key-0123456789ab"}
	aliceEvents, _ := sseOpen(t, e, "GET", "/wamp/secure/events/com.pub.news", "", alice...)
	aliceCall, _ := openTicks(t, e, "/wamp/secure/call/com.ok.tick", alice...)
	bobEvents, leaveB1 := sseOpen(t, e, "GET", "/wamp/secure/events/com.pub.news", "", bob...)
	bobCall, leaveB2 := openTicks(t, e, "/wamp/secure/call/com.ok.tick", bob...)
	anonEvents, _ := sseOpen(t, e, "GET", "/wamp/realm1/events/com.news", "")
	anonCall, _ := openTicks(t, e, "/wamp/realm1/call/com.tick")
	flowing := func(what string, events, calls []*sseReader) {
		t.Helper()
		publish(t, e, "secure", "com.pub.news", what)
		if events[len(events)-1] == anonEvents {
			publish(t, e, "realm1", "com.news", what)
		}
		for _, rd := range events {
			if ev := nextEvent(t, rd, "", what); !strings.Contains(ev.data, what) {
				t.Fatalf("%s: event %s", what, ev.data)
			}
		}
		for _, rd := range calls {
			nextEvent(t, rd, "progress", what)
		}
	}

	reloadRealms(t, e, realms(true), access(nil))
	flowing("after a reload that changes nothing", []*sseReader{aliceEvents, bobEvents, anonEvents}, []*sseReader{aliceCall, bobCall, anonCall})

	// Role user's http_bridge turned off: alice's key no longer serves
	// the bridge; the router's RBAC is unchanged.
	reloadRealms(t, e, realms(true), access(func(ra []RealmAccess) { ra[1].BridgeRoles = []string{"svc"} }))
	noBridge := ending{403, proto.URINotAuthorized, `role "user" is not granted the HTTP bridge on realm "secure"`}
	expectEnded(t, aliceEvents, "alice's event stream", noBridge)
	expectEnded(t, aliceCall, "alice's streamed call", noBridge)
	waitInterrupted(t, secureTicks, "alice's streamed call")
	flowing("after a reload that takes role user's bridge away", []*sseReader{bobEvents, anonEvents}, []*sseReader{bobCall, anonCall})

	// The gateway's realm1 refuses requests without credentials. (The
	// router's realm1 stays anonymous here, so that the tick callee, an
	// anonymous session, stays: refusing anonymous sessions there too, as
	// a reload of the configuration file does, ends the gateway's
	// anonymous sessions as well, whichever comes first; what a stream
	// then says is TestSSEEndsWhenRouterEndsItsSession's.)
	reloadRealms(t, e, realms(true), access(func(ra []RealmAccess) {
		ra[0].Anonymous = false
		ra[1].BridgeRoles = []string{"svc"}
	}))
	noAnonymous := ending{401, proto.URIAuthenticationRequired, "this realm needs credentials"}
	expectEnded(t, anonEvents, "the anonymous event stream", noAnonymous)
	expectEnded(t, anonCall, "the anonymous streamed call", noAnonymous)
	waitInterrupted(t, realm1Ticks, "the anonymous streamed call")
	flowing("after a reload that refuses anonymous requests", []*sseReader{bobEvents}, []*sseReader{bobCall})

	// The bridge of realm secure turned off.
	reloadRealms(t, e, realms(true), access(func(ra []RealmAccess) {
		ra[0].Anonymous = false
		ra[1].Bridge = false
	}))
	bridgeOff := ending{404, proto.URINoSuchRealm, `the HTTP bridge is not enabled for realm "secure"`}
	expectEnded(t, bobEvents, "bob's event stream", bridgeOff)
	expectEnded(t, bobCall, "bob's streamed call", bridgeOff)
	waitInterrupted(t, secureTicks, "bob's streamed call")
	leaveB1()
	leaveB2()
	settled(t, e)
}

// TestSSEEndsWhenReloadTakesBridgeFromActingRole: after a reload a bridge
// stream is judged by the role it acts as, as a request is
// (bridgeAccess): the event stream of a bearer token acting as role user
// that also lists role svc went on when a reload granted the bridge to
// svc only, as its request would have been served.
func TestSSEEndsWhenReloadTakesBridgeFromActingRole(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) { o.Bearer = rolesVerifier{"dave": {"user", "svc"}} })
	events, _ := sseOpen(t, e, "GET", "/wamp/secure/events/com.pub.news", "", "Authorization", "Bearer dave")
	publish(t, e, "secure", "com.pub.news", "before the reload")
	if ev := nextEvent(t, events, "", "before the reload"); !strings.Contains(ev.data, "before the reload") {
		t.Fatalf("event %s", ev.data)
	}
	reloadRealms(t, e, []route.RealmConfig{realm1(true), secureRealm()}, []RealmAccess{
		{Name: "realm1", Bridge: true, Anonymous: true, AnonymousRole: "anonymous"},
		{Name: "secure", Bridge: true, Security: true, BridgeRoles: []string{"svc"}},
	})
	expectEnded(t, events, "the event stream acting as role user", ending{403, proto.URINotAuthorized, `role "user" is not granted the HTTP bridge on realm "secure"`})
	settled(t, e)
}

// TestSSEEndsWhenRouterEndsItsSession: the router may end what a stream
// stands on itself: a reload that refuses anonymous sessions ends the
// gateway's anonymous WAMP sessions (GOODBYE wamp.close.killed, with the
// reason as its message), whichever of the router and the gateway's own
// check (TestSSEEndsWhenReloadTakesAccessAway) comes first. An event
// stream so ended closed without a word; now its last event is a problem
// saying what the router did and why.
func TestSSEEndsWhenRouterEndsItsSession(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	rd, _ := sseOpen(t, e, "GET", "/wamp/realm1/events/com.news", "")
	// The router's reload alone: the gateway's realms still admit
	// anonymous requests.
	if err := e.r.Reload([]route.RealmConfig{realm1(false), secureRealm()}); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, rd, "an event stream whose session the router ended",
		ending{503, proto.CloseKilled, "anonymous sessions are no longer allowed on this realm"})
	settled(t, e)
}

// TestReloadEndsThousandsOfStreams: a reload checks every open stream
// once, off the request path. Of 2,000 event streams of two principals,
// the 1,000 of the one whose bridge access the reload takes away end,
// each with its problem event; the others go on; requests are served
// meanwhile; nothing stays behind.
func TestReloadEndsThousandsOfStreams(t *testing.T) {
	laneFree(t)
	const n = 1000
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{
			{Name: "alice", Key: "alice-key-0123456789", Realm: "secure", AuthID: "alice", Role: "user"},
			{Name: "bob", Key: "bob-key-0123456789ab", Realm: "secure", AuthID: "bob", Role: "svc"},
		}
		o.Realms[1].BridgeRoles = []string{"user", "svc"}
		o.Limits.MaxStreams = 2 * n
		o.Limits.MaxStreamsPerClient = 2 * n
		o.Limits.MaxStreamsPerIdentity = n // each key's thousand
	})
	type sseConn struct {
		c  net.Conn
		br *bufio.Reader
	}
	open := func(key string) []sseConn {
		out := make([]sseConn, 0, n)
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", e.gw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fmt.Fprintf(c, "GET /wamp/secure/events/com.pub.t%d HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nX-API-Key: %s\r\n\r\n", i%16, key)
			out = append(out, sseConn{c, bufio.NewReader(c)})
		}
		return out
	}
	// readTo reads a stream until a line holding want, or its end.
	readTo := func(s sseConn, want string) (string, error) {
		s.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			line, err := s.br.ReadString('\n')
			if strings.Contains(line, want) {
				return line, nil
			}
			if err != nil {
				return "", err
			}
		}
	}
	cut, kept := open("alice-key-0123456789"), open("bob-key-0123456789ab")
	for _, s := range append(cut[:len(cut):len(cut)], kept...) {
		if _, err := readTo(s, ": subscribed"); err != nil {
			t.Fatalf("a stream did not open: %v", err)
		}
	}
	if streams, _ := watched(e); streams != 2*n {
		t.Fatalf("%d streams watched, want %d", streams, 2*n)
	}

	// Requests keep being served while the reload walks the streams.
	stop := make(chan struct{})
	var served sync.WaitGroup
	var slowest time.Duration
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if r, body := e.do("POST", "/wamp/secure/publish/com.pub.other", `{}`, "X-API-Key", "bob-key-0123456789ab"); r.StatusCode != 202 {
				t.Errorf("a publication during the reload: %d %s", r.StatusCode, body)
				return
			}
			slowest = max(slowest, time.Since(start))
		}
	}()
	start := time.Now()
	e.gw.SetRealms([]RealmAccess{
		{Name: "realm1", Bridge: true, Anonymous: true, AnonymousRole: "anonymous"},
		{Name: "secure", Bridge: true, Security: true, BridgeRoles: []string{"svc"}},
	})
	took := time.Since(start)
	var wg sync.WaitGroup
	var failed sync.Once
	for _, s := range cut {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := readTo(s, `"error":"wamp.error.not_authorized"`)
			if err != nil || !strings.Contains(line, `role \"user\" is not granted the HTTP bridge`) {
				failed.Do(func() { t.Errorf("a stream of the principal the reload cut: %q %v", line, err) })
			}
		}()
	}
	wg.Wait()
	close(stop)
	served.Wait()
	t.Logf("SetRealms with %d streams open took %v; slowest request meanwhile %v", 2*n, took, slowest)
	if t.Failed() {
		return
	}
	waitFor(t, "the cut streams let go", func() bool {
		streams, _ := watched(e)
		return e.gw.streams.Load() == n && streams == n
	})
	for i := 0; i < 16; i++ {
		publish(t, e, "secure", fmt.Sprintf("com.pub.t%d", i), "still here")
	}
	for _, s := range kept {
		if _, err := readTo(s, "still here"); err != nil {
			t.Fatalf("a stream the reload leaves alone: %v", err)
		}
	}
	for _, s := range kept {
		s.c.Close()
	}
	settled(t, e)
}

// expiringVerifier takes two tokens: "short", which expires at exp, and
// "long", which expires in an hour.
type expiringVerifier struct{ exp time.Time }

func (v expiringVerifier) VerifyBearer(_ context.Context, token string) (*Principal, error) {
	switch token {
	case "short":
		return &Principal{Realm: "realm1", AuthID: "short", AuthRole: "user", Expires: v.exp}, nil
	case "long":
		return &Principal{Realm: "realm1", AuthID: "long", AuthRole: "user", Expires: time.Now().Add(time.Hour)}, nil
	}
	return nil, fmt.Errorf("not a token")
}

// TestSSECallEndsWhenBearerExpires: an event stream ended when its bearer
// token expired, but a call streaming its progressive results went on
// after it, for as long as the call (up to max_call_timeout), its callee
// producing all along. Now it ends at the expiry as the event stream
// does, with a problem event, the call canceled at the router (its callee
// interrupted); a call of a token that has not expired goes on. (An
// expiry is not a withdrawal: edgewamp_gateway_sse_withdrawn_total does
// not count it.)
func TestSSECallEndsWhenBearerExpires(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Bearer = expiringVerifier{exp: time.Now().Add(3 * time.Second)}
		o.Realms[0].Anonymous = false
		o.Routes = []Route{{Method: "POST", Path: "/ticks", Realm: "realm1", Call: "com.tick", Auth: Auth{Type: "bearer"}, Timeout: time.Minute}}
	})
	interrupted := tickCallee(t, e, "realm1", "com.tick")
	shortCall, _ := openTicks(t, e, "/wamp/realm1/call/com.tick", "Authorization", "Bearer short")
	shortRoute, _ := openTicks(t, e, "/ticks", "Authorization", "Bearer short")
	shortEvents, _ := sseOpen(t, e, "GET", "/wamp/realm1/events/com.news", "", "Authorization", "Bearer short")
	longCall, leave := openTicks(t, e, "/wamp/realm1/call/com.tick", "Authorization", "Bearer long")

	expired := ending{401, proto.URIAuthenticationFailed, "the bearer token expired"}
	expectEnded(t, shortCall, "the streamed call of an expired token", expired)
	expectEnded(t, shortRoute, "the route's streamed call of an expired token", expired)
	expectEnded(t, shortEvents, "the event stream of an expired token", expired)
	waitInterrupted(t, interrupted, "the streamed call of an expired token")
	waitInterrupted(t, interrupted, "the route's streamed call of an expired token")
	for range 3 {
		nextEvent(t, longCall, "progress", "the call of a token that has not expired")
	}
	if n := metricValue(t, e, "edgewamp_gateway_sse_withdrawn_total"); n != "0" {
		t.Errorf("edgewamp_gateway_sse_withdrawn_total = %q, want 0", n)
	}
	leave()
	settled(t, e)
}

// TestSSEEndsWithTheRouterKillReason: a stream whose gateway WAMP session
// another session kills (wamp.session.kill_by_authrole, wamp.session.kill)
// ends with a problem whose error is the router's reason, as README says
// (the kill's reason, wamp.close.normal by default), still 503. Before,
// the error was always wamp.close.system_shutdown, the router's reason
// only in the detail, so a client could not tell a kill from a stop.
func TestSSEEndsWithTheRouterKillReason(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	admin := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd, _ := sseOpen(t, e, "GET", "/wamp/realm1/events/com.news", "")
	if _, err := admin.Call(ctx, "wamp.session.kill_by_authrole", []any{"anonymous"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, rd, "an event stream whose session was killed",
		ending{503, proto.CloseNormal, "router said GOODBYE " + proto.CloseNormal})
	settled(t, e)

	rd, _ = sseOpen(t, e, "GET", "/wamp/realm1/events/com.news", "")
	if _, err := admin.Call(ctx, "wamp.session.kill_by_authrole", []any{"anonymous"},
		map[string]any{"reason": "com.example.maintenance", "message": "back soon"}, nil); err != nil {
		t.Fatal(err)
	}
	expectEnded(t, rd, "an event stream whose session was killed with a reason",
		ending{503, "com.example.maintenance", "back soon"})
	settled(t, e)

	// A streamed call: its callee stays, the gateway's session alone is
	// killed (wamp.session.kill of its id).
	tickCallee(t, e, "realm1", "com.ticks")
	rd, _ = openTicks(t, e, "/wamp/realm1/call/com.ticks")
	killHTTPSessions(ctx, t, admin, "com.example.moved")
	expectEnded(t, rd, "a streamed call whose session was killed",
		ending{503, "com.example.moved", "router said GOODBYE com.example.moved"})
	settled(t, e)
}

// killHTTPSessions kills the gateway's WAMP sessions of the caller's
// realm, one by one, with reason.
func killHTTPSessions(ctx context.Context, t *testing.T, admin *client.Session, reason string) {
	t.Helper()
	res, err := admin.Call(ctx, "wamp.session.list", nil, nil, nil)
	if err != nil || len(res.Args) == 0 {
		t.Fatalf("wamp.session.list: %v %v", res, err)
	}
	ids, _ := res.Args[0].([]any)
	n := 0
	for _, id := range ids {
		g, err := admin.Call(ctx, "wamp.session.get", []any{id}, nil, nil)
		if err != nil || len(g.Args) == 0 {
			continue
		}
		d, _ := g.Args[0].(map[string]any)
		tr, _ := d["transport"].(map[string]any)
		if tr["type"] != "http" {
			continue
		}
		if _, err := admin.Call(ctx, "wamp.session.kill", []any{id}, map[string]any{"reason": reason}, nil); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no gateway session to kill")
	}
}
