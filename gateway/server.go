package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgewamp/edgewamp/internal/tlsinput"
	"github.com/edgewamp/edgewamp/proto"
)

// ErrClosed is returned by Start after Shutdown.
var ErrClosed = errors.New("gateway: server closed")

// Server is the gateway's HTTP server. Create it with New, then Start;
// Shutdown stops it. Its methods are safe for concurrent use.
type Server struct {
	opts    Options // static after New
	log     *slog.Logger
	own     []endpoint // the gateway's own endpoints and the mounts, registered in every snapshot's mux; static
	srv     *http.Server
	hosts   *hostPolicy // the Host check (host.go); nil checks none
	queues  []*shardQ   // one per router shard; static
	pool    *pool
	metrics *metrics
	proxyState
	limiter *failLimiter
	nonces  *nonceCache

	// access is the realms' bridge access, the API and signing keys, the
	// routes and the mux that dispatches requests to them, and the
	// OpenAPI document, swapped as one by a reload (keys.go, reload.go);
	// a request loads it once.
	access    atomic.Pointer[access]
	accessMu  sync.Mutex    // serializes the writers of access
	apiKeyHdr string        // Options.APIKeyHeader in canonical form (direct header map lookups)
	otherLbl  *routeMetrics // the metrics of label "other" (no endpoint, or a method no route of the path has)

	// runners are the HTTP callees and webhooks, replaced by a reload
	// (runners.go); runMu serializes their starts and stops.
	runners    atomic.Pointer[runnerSet]
	runMu      sync.Mutex
	pending    atomic.Pointer[Prepared] // the last Prepare's, until its Apply or Discard
	runStarted bool                     // Start started them; guarded by runMu
	runStopped bool                     // Shutdown stopped them; guarded by runMu

	lane          *laneListener // what the event loop's HTTP lane hands over, served from StartLane (lane.go)
	laneLbl       *routeMetrics // bridge_call's metrics, for the lane
	laneSlowCalls atomic.Uint64 // lane calls run on a goroutine (no session on the loop's shard)
	// laneUnwritten counts the lane's answers queued to their connections
	// and not yet written (laneCall.answerHeld): their requests still
	// hold their slots (inflight), which Shutdown does not wait for.
	laneUnwritten atomic.Int64
	inflight      atomic.Int64 // requests holding a session
	streams       atomic.Int64 // SSE streams open
	sse           sseBudget    // bytes of events queued to SSE streams (sse.go)
	ipMu          sync.Mutex
	perIP         map[string]int // client IP → SSE streams open; guarded by ipMu

	// serving counts the requests net/http is serving (dispatch) beyond
	// each connection's first, bounded by Limits.MaxConnections and the
	// spare connections (serveBound).
	serving atomic.Int64

	grantMu sync.Mutex
	grants  map[*grant]struct{}            // the open SSE streams' grants (grant.go); guarded by grantMu
	bearers map[string]map[*grant]struct{} // revocation id → the grants of streams opened with a token it revokes; guarded by grantMu

	reloadMu sync.Mutex
	reloadCh chan struct{} // closed by the next SetRealms (a configuration reload); guarded by reloadMu

	mu       sync.Mutex
	ln       net.Listener // guarded by mu
	started  bool         // guarded by mu
	closed   bool         // Drain began; guarded by mu
	shut     bool         // Shutdown began; guarded by mu
	draining chan struct{}
	// drainEnd is closed when Drain's context ends with requests still
	// running: the calls streamed as SSE then end (streamedCalls counts
	// their handlers, which Drain waits for, streamedCallsGrace at most,
	// before it closes the connections).
	drainEnd      chan struct{}
	streamedCalls atomic.Int64
	bg            sync.WaitGroup // janitor, callees, webhooks
	syncWait      time.Duration  // how long runSync waits for a shard (10 s; tests shorten it)
}

// New validates opts and builds the server; it listens only in Start.
// Every configuration error is returned at once (errors.Join of
// *FieldError values naming each field).
func New(opts Options) (*Server, error) {
	return build(opts, true)
}

// Validate checks opts as New does, without a router: cmd's
// check-config uses it. The error joins *FieldError values.
func Validate(opts Options) error {
	_, err := build(opts, false)
	return err
}

func build(opts Options, needRouter bool) (*Server, error) {
	errs := opts.setDefaults(needRouter)
	g := &Server{opts: opts, log: opts.Logger, draining: make(chan struct{}), drainEnd: make(chan struct{}), perIP: map[string]int{}, syncWait: 10 * time.Second, reloadCh: make(chan struct{})}
	if opts.Router != nil {
		for i := 0; i < opts.Router.Shards(); i++ {
			g.queues = append(g.queues, newShardQ(opts.Router.Shard(i)))
		}
	}
	g.pool = newPool(g)
	g.metrics = newMetrics(g)
	g.laneLbl = g.metrics.route("bridge_call")
	g.lane = newLaneListener()
	g.limiter = newFailLimiter(g.opts.Limits.AuthFailures)
	g.nonces = newNonceCache(1 << 20)
	g.apiKeyHdr = http.CanonicalHeaderKey(g.opts.APIKeyHeader)
	kt, kerrs := compileKeys(opts.APIKeys, opts.SigningKeys)
	errs = append(errs, kerrs...)
	var herrs []error
	g.hosts, herrs = newHostPolicy(opts.Hosts, opts.KnownHosts)
	errs = append(errs, herrs...)
	errs = append(errs, g.buildOwn()...)
	rt, rerrs := g.compileRoutes(opts.Routes, kt, nil)
	errs = append(errs, rerrs...)
	ac, aerrs := g.newAccess(opts.Realms, kt, rt, nil)
	errs = append(errs, aerrs...)
	cs, cerrs := g.checkCallees(opts.Callees)
	errs = append(errs, cerrs...)
	ws, named, werrs := checkWebhooks(opts.Webhooks)
	errs = append(errs, werrs...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	g.runners.Store(g.newRunners(cs, ws, named))
	if _, err := ac.openapi.get(); err != nil {
		return nil, err
	}
	g.metrics.install(rt.metrics(), nil)
	g.access.Store(ac)
	l := &g.opts.Limits
	g.srv = &http.Server{
		Handler:           http.HandlerFunc(g.dispatch),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    netHTTPHeaderBytes(l.MaxHeader, opts.TLS != nil),
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		TLSConfig:         opts.TLS,
		ConnContext:       connContext,
		// A response's write deadline (statusWriter) must not outlive it:
		// the connection's next request starts without one.
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateIdle {
				c.SetWriteDeadline(time.Time{})
			}
			tlsConnState(c, st)
		},
	}
	return g, nil
}

// netHTTPHeaderBytes is the http.Server MaxHeaderBytes that holds a
// request's head (request line to its final CRLF) to maxHeader bytes:
// net/http reads 4 KiB past MaxHeaderBytes (its bufio slop) before it
// answers 431, so that much less is asked of it (at least 1 byte: 0 is
// its 1 MiB default, so a head of 4 KiB and a byte passes any smaller
// maxHeader). Before, MaxHeader was given as it was, and the default
// 16 KiB served heads of 20 KiB. Not over TLS: net/http bounds HTTP/2's
// header lists by the same value (plus 320 bytes), which 4 KiB less
// would cut to a few hundred bytes at a small maxHeader; there HTTP/1.1
// heads keep the slop.
func netHTTPHeaderBytes(maxHeader int, overTLS bool) int {
	if overTLS {
		return maxHeader
	}
	return max(maxHeader-netHTTPHeaderSlop, 1)
}

// netHTTPHeaderSlop is what net/http reads of a request head past its
// MaxHeaderBytes (http.Server.initialReadLimitSize).
const netHTTPHeaderSlop = 4096

// realmEntry is a realm's bridge access and, when it admits anonymous
// requests, the principal they act as (built once, so that an anonymous
// request allocates none).
type realmEntry struct {
	RealmAccess
	anon *who // nil unless Anonymous
}

// SetRealms replaces the realms' bridge access (configuration reload),
// keeping the keys and the routes: SetAccess with the keys in use. HTTP
// callees and webhooks the router removed since the last call
// (wamp.registration.remove_callee, wamp.subscription.remove_subscriber,
// a reload's revocation) register and subscribe again, and the SSE
// streams whose credential no longer authorizes them end (grant.go): call
// it after the verifier and the router have the reload's configuration.
func (g *Server) SetRealms(realms []RealmAccess) {
	g.setAccess(realms, nil)
}

// nextReload returns a channel closed by the next SetRealms: the HTTP
// callees and webhooks the router removed wait on it before registering
// or subscribing again. Safe for concurrent use.
func (g *Server) nextReload() <-chan struct{} {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	return g.reloadCh
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// endpoint is one of the gateway's own endpoints or a mount: its pattern
// and its handler (wrapped), and for a mount the field naming it in
// errors.
type endpoint struct {
	pattern string
	h       http.Handler
	field   []any
}

// buildOwn builds the gateway's own endpoints and the mounts, which every
// snapshot's mux registers (newMux).
func (g *Server) buildOwn() []error {
	g.otherLbl = g.metrics.route("other")
	add := func(pattern string, h http.Handler, field ...any) {
		g.own = append(g.own, endpoint{pattern: pattern, h: h, field: field})
	}
	add("/healthz", g.wrap("healthz", nil, http.HandlerFunc(g.healthz)))
	add("/readyz", g.wrap("readyz", nil, http.HandlerFunc(g.readyz)))
	add("/metrics", g.wrap("metrics", nil, g.metrics.handler()))
	add("/openapi.json", g.wrap("openapi", nil, http.HandlerFunc(g.serveOpenAPI)))
	errs := validateCORS(&g.opts.CORS, "cors")
	post := newCORSPolicy(&g.opts.CORS, []string{"POST"}, g.opts.APIKeyHeader)
	get := newCORSPolicy(&g.opts.CORS, []string{"GET", "HEAD"}, g.opts.APIKeyHeader) // the event streams answer HEAD
	add(patBridgeCall, g.wrap("bridge_call", post, refuseOrigins(post, http.HandlerFunc(g.bridgeCall))))
	add("/wamp/{realm}/publish/{topic}", g.wrap("bridge_publish", post, refuseOrigins(post, http.HandlerFunc(g.bridgePublish))))
	add("/wamp/{realm}/events/{topic}", g.wrap("bridge_events", get, refuseOrigins(get, http.HandlerFunc(g.bridgeEvents))))
	// The mounts before the routes: a route that conflicts with one is the
	// route's error (a reload's routes are checked against them too).
	for _, pattern := range sortedKeys(g.opts.Mount) {
		add(pattern, g.wrap("mount:"+pattern, nil, g.opts.Mount[pattern]), "mount", pattern)
	}
	return errs
}

// newMux registers the gateway's own endpoints, the mounts and the routes
// of t, bound to ac (the snapshot the mux is for). A conflict between
// patterns (two routes, a route and an endpoint of the gateway's own or a
// mount) is a configuration error, not a panic; so is an invalid pattern.
func (g *Server) newMux(ac *access, t *routeTable) (mux *http.ServeMux, errs []error) {
	mux = http.NewServeMux()
	handle := func(pattern string, h http.Handler, path ...any) {
		defer func() {
			if r := recover(); r != nil {
				msg := fmt.Sprint(r)
				if strings.Contains(msg, "conflicts with") {
					msg = "pattern " + strconv.Quote(pattern) + " conflicts with an endpoint registered before it (the gateway's own, a mount or a route)"
				}
				errs = append(errs, fieldErr(msg, path...))
			}
		}()
		mux.Handle(pattern, h)
	}
	for _, e := range g.own {
		handle(e.pattern, e.h, e.field...)
	}
	g.bindRoutes(ac, t, handle)
	handle("/", g.wrapWith(g.otherLbl, "other", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(http.StatusNotFound, URINotFound, "no endpoint "+r.URL.Path))
	})))
	return mux, errs
}

// dispatch serves a request by the mux of the snapshot of now: the routes
// it finds, and the keys and realms they judge the request by, are one
// configuration's.
func (g *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	g.fromProxy(r)
	if g.serveSpare(w, r) {
		return
	}
	counted, ok := g.serveBound(w, r)
	if !ok {
		return
	}
	defer g.endServe(r, counted)
	if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0) {
		// A chunked body ends the connection. RFC 9112 §6.1: a server
		// that frames a request with both Transfer-Encoding and
		// Content-Length by its chunks MUST close the connection after
		// answering it, since a front end may have framed it by its
		// length and taken the bytes after the chunks for body: net/http
		// (Go 1.26) drops the length, keeps the connection, and served
		// those bytes as a request the front end never saw (golang/go
		// #80942). The handler no longer sees whether a length was sent,
		// so every chunked request is the connection's last; the event
		// loop's lane hands them all to net/http, off the lane's path.
		// An HTTP/1.0 request too: it has no chunked coding, so net/http
		// drops its Transfer-Encoding unseen and frames it by its length,
		// keeping a keep-alive connection, where RFC 9112 §6.1 asks the
		// connection closed after one with a Transfer-Encoding (a front
		// end may have framed it by its chunks: the bytes past the length
		// were served as a request of their own).
		w.Header().Set("Connection", "close")
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		bw := watchBody(w, r, g.opts.Limits.BodyTimeout)
		defer bw.end()
		w = bw
	}
	g.access.Load().mux.ServeHTTP(w, r)
}

// serveBound admits r, and reports false, having answered 503, when it
// is refused. A connection's first request in progress is admitted
// always: the connection bound (limitListener) bounds those, as over
// HTTP/1.1, which carries one at a time. Over HTTP/2 (Options.TLS) one
// connection carries up to 250 at once (Go's server's streams), and
// max_connections bounded 250 times as many handlers (a goroutine, a
// body's first 16 KiB, the stream's state each): one connection that
// declared bodies and sent none held 200 for body_timeout under
// max_connections 4. The requests beyond each connection's first share
// max_connections more (counted reports r among them; the caller ends
// it with endServe): past it they get 503 at once, a health probe
// excepted, while another client's first request is still served (when
// all requests shared one bound, a few HTTP/2 connections holding it
// had every other client refused 503).
func (g *Server) serveBound(w http.ResponseWriter, r *http.Request) (counted, ok bool) {
	if c, _ := r.Context().Value(inflightKey{}).(*atomic.Int32); c != nil && c.Add(1) == 1 {
		return false, true
	}
	if g.serving.Add(1) <= int64(g.opts.Limits.MaxConnections+spareConns) {
		return true, true
	}
	g.serving.Add(-1)
	switch r.URL.Path {
	case "/healthz", "/readyz":
		return false, true
	}
	g.endServe(r, false)
	g.refused(refusedConnections)
	p := tooBusy(http.StatusServiceUnavailable, "the gateway serves as many requests at once as max_connections allows")
	g.otherLbl.observe(p.status, 0)
	writeProblem(w, p)
	return false, false
}

// endServe ends r's count in its connection's requests in progress, and
// among the requests beyond the connections' first when counted.
func (g *Server) endServe(r *http.Request, counted bool) {
	if c, _ := r.Context().Value(inflightKey{}).(*atomic.Int32); c != nil {
		c.Add(-1)
	}
	if counted {
		g.serving.Add(-1)
	}
}

// bodyWatch bounds the time a request's body may take to arrive, whoever
// reads it or leaves it (Limits.BodyTimeout, from the request's start), so
// that a declared body that never comes holds neither the connection nor
// its goroutine. net/http reads a body the handler left unread (up to 256
// KiB) before it writes the answer, with no deadline of its own (the
// server has no ReadTimeout: it would bound every request, streams
// included): /healthz, a 415 or 401 made before the body is read, an event
// stream, a GET route, a mount's form (ParseForm) all waited for as long
// as the client liked. With the watch:
//
//   - the connection has a read deadline until the body is read to its
//     end, which is then cleared (net/http starts its background read
//     then, and a deadline left would cancel the request's context);
//   - an answer made with the body unread says Connection: close (HTTP/1),
//     so that net/http sends it at once, without reading the body first,
//     and closes the connection after it once it has read what it may of
//     the body within the deadline (a 408 from readBody says it too).
//
// It is the request's Body and its ResponseWriter in one allocation.
type bodyWatch struct {
	http.ResponseWriter
	body   io.ReadCloser // the request's
	rc     *http.ResponseController
	http1  bool
	eof    atomic.Bool // the body was read to its end
	header bool        // the answer's header was written, or Connection set
}

func watchBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) *bodyWatch {
	bw := &bodyWatch{ResponseWriter: w, body: r.Body, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1}
	bw.rc.SetReadDeadline(time.Now().Add(timeout))
	r.Body = bw
	return bw
}

// Read implements io.Reader: the request's body.
func (b *bodyWatch) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF && !b.eof.Swap(true) {
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Close implements io.Closer.
func (b *bodyWatch) Close() error { return b.body.Close() }

// closeUnread marks the answer Connection: close when the body is not
// read to its end, before its header is written.
func (b *bodyWatch) closeUnread() {
	if b.header {
		return
	}
	b.header = true
	if b.http1 && !b.eof.Load() {
		b.ResponseWriter.Header().Set("Connection", "close")
	}
}

func (b *bodyWatch) WriteHeader(code int) {
	if code >= 200 { // not an informational (1xx) header
		b.closeUnread()
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *bodyWatch) Write(p []byte) (int, error) {
	b.closeUnread()
	return b.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (b *bodyWatch) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// end runs when the handler returns, before net/http writes an answer the
// handler did not.
func (b *bodyWatch) end() { b.closeUnread() }

// wrap adds what every endpoint gets: panic recovery, CORS (when cors is
// set) and the HTTP metrics under the route label name.
func (g *Server) wrap(name string, cors *corsPolicy, h http.Handler) http.Handler {
	return g.wrapWith(g.metrics.route(name), name, cors, h)
}

// wrapWith is wrap counting into lbl.
func (g *Server) wrapWith(lbl *routeMetrics, name string, cors *corsPolicy, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, wt: g.opts.Limits.WriteTimeout}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				g.log.Error("gateway: handler panic", "route", name, "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeProblem(sw, newProblem(http.StatusInternalServerError, "edgewamp.error.internal", "internal error"))
				}
			}
			lbl.observe(sw.code(r), time.Since(start))
		}()
		if g.refuseHost(sw, r) {
			return
		}
		if cors != nil && corsHandled(cors, sw, r) {
			return
		}
		h.ServeHTTP(sw, r)
	})
}

// statusWriter records the status a handler wrote, and bounds the
// response's writes by Limits.WriteTimeout: each piece of writeChunk
// bytes must go out within it, so that a client that does not read
// cannot hold the handler and its answer (SSE writers set their own
// deadlines, and clear them between frames, through the same gate).
type statusWriter struct {
	http.ResponseWriter
	status int
	wt     time.Duration
	gate   *writeGate
}

const writeChunk = 64 << 10

func (w *statusWriter) deadline() {
	if w.wt > 0 {
		w.writeGate().set(time.Now().Add(w.wt))
	}
}

// writeGate returns the gate of the response's write deadline, made on
// first use.
func (w *statusWriter) writeGate() *writeGate {
	if w.gate == nil {
		w.gate = &writeGate{rc: http.NewResponseController(w.ResponseWriter)}
	}
	return w.gate
}

// writeGate sets a response's write deadline, and ends its writes for
// good: once end has run, a deadline set after it (the next 64 KiB piece
// of a large write, the next SSE frame, the clearing between frames)
// leaves the passed one in place. Before, the SSE total's reaper set the
// deadline of a stuck stream's write to now, and the next piece's
// deadline undid it when the write was still progressing (a client's
// socket taking megabytes before it blocks): the write went on blocked
// until Limits.WriteTimeout, its frame held past the total's bound.
type writeGate struct {
	mu    sync.Mutex
	rc    *http.ResponseController
	ended bool
}

// set sets the write deadline to t (zero: none), unless end ran.
func (g *writeGate) set(t time.Time) {
	g.mu.Lock()
	if !g.ended {
		g.rc.SetWriteDeadline(t)
	}
	g.mu.Unlock()
}

// end makes the response's writes fail from now on, a write in progress
// included.
func (g *writeGate) end() {
	g.mu.Lock()
	g.ended = true
	g.rc.SetWriteDeadline(time.Now())
	g.mu.Unlock()
}

// gateOf returns the write gate of w: its statusWriter's (found through
// Unwrap, as http.ResponseController finds the connection), or a new one
// for a writer without one.
func gateOf(w http.ResponseWriter) *writeGate {
	for u := w; ; {
		if s, ok := u.(*statusWriter); ok {
			return s.writeGate()
		}
		uw, ok := u.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return &writeGate{rc: http.NewResponseController(w)}
		}
		u = uw.Unwrap()
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.deadline()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.deadline()
	}
	if len(b) <= writeChunk || w.wt <= 0 {
		return w.ResponseWriter.Write(b)
	}
	n := 0
	for len(b) > 0 {
		k := min(len(b), writeChunk)
		w.deadline()
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code(r *http.Request) int {
	if w.status == 0 {
		if r.Context().Err() != nil {
			return StatusClientClosed
		}
		return http.StatusOK
	}
	return w.status
}

// Start listens and serves in the background; it returns once the
// listener is bound (or with the error binding it), after starting the
// HTTP callees' registrations and the webhooks' subscriptions.
func (g *Server) Start() error {
	return g.start(nil)
}

// start listens on Options.Addr, or serves ln when set, and starts the
// background work.
func (g *Server) start(ln net.Listener) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.started {
		return errors.New("gateway: already started")
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.opts.Addr); err != nil {
			return fmt.Errorf("gateway: listen %s: %w", g.opts.Addr, err)
		}
	}
	ll := newLimitListener(ln, g.opts.Limits.MaxConnections)
	if g.opts.TLS != nil {
		ll.firstMax = tlsFirstReadMax(g.srv.MaxHeaderBytes)
	}
	g.ln = ll
	g.started = true
	go func() {
		var err error
		if g.opts.TLS != nil {
			// ServeTLS sets up HTTP/2 (ALPN h2) besides HTTP/1.1.
			err = g.srv.ServeTLS(ll, "", "")
		} else {
			err = g.srv.Serve(ll)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("gateway: server stopped", "err", err)
		}
	}()
	g.bg.Add(1)
	go g.janitor()
	g.startRunners()
	return nil
}

// Addr returns the bound address (nil before Start).
func (g *Server) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// Drain stops accepting connections (the event loops' HTTP lane, which
// still accepts until the engine's shutdown, answers new requests 503
// with Connection: close and Retry-After), ends the event streams and
// waits for the requests in progress, the calls streamed as SSE among
// them, until ctx is done (the streamed calls then end with a problem
// event, the others are cut); those may still open
// pooled sessions (the router lets the gateway's sessions join while it
// drains). The HTTP callees and webhooks keep their sessions: the
// invocations in flight on them are what the router's drain waits for,
// and they are delivered until Shutdown. Run it alongside the router's
// drain, and Shutdown after both. It returns ctx's error when requests
// were still running (they are then cut). Safe for concurrent use; it
// blocks; calling it again does nothing.
func (g *Server) Drain(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	started := g.started
	close(g.draining)
	g.mu.Unlock()
	g.endStreamWrites()
	var err error
	if started {
		err = g.srv.Shutdown(ctx)
		if err != nil {
			g.endStreamedCalls()
			g.srv.Close()
		}
		if lerr := g.waitLane(ctx); err == nil {
			err = lerr
		}
	}
	return err
}

// endStreamWrites bounds the writes of the event streams in progress as
// the drain starts to drainEventTimeout (those that begin later are:
// sseWriter.deadline). A handler blocked writing to a client that does
// not read sees the drain only once its write fails: before, at the
// stream's write timeout (10 s by default), which held Drain, and the
// stop, as long (TestDrainNotHeldByStreamWriteInProgress). Called once,
// by Drain, after draining is closed.
func (g *Server) endStreamWrites() {
	due := time.Now().Add(min(g.opts.Limits.WriteTimeout, drainEventTimeout))
	g.sse.mu.Lock()
	defer g.sse.mu.Unlock()
	for q := range g.sse.queues {
		if st, ok := q.(*stream); ok {
			if wg := st.gate.Load(); wg != nil {
				wg.set(due)
			}
		}
	}
}

// streamedCallsGrace bounds how long Drain, past its context, waits for
// the calls streamed as SSE to write their last event.
const streamedCallsGrace = time.Second

// endStreamedCalls ends the calls streamed as SSE that are still running
// at the drain's deadline: each is canceled and its last event is a
// problem saying so, written before the connections close (a handler
// blocked writing to a client that does not read is not waited for past
// streamedCallsGrace). Called once, by Drain.
func (g *Server) endStreamedCalls() {
	close(g.drainEnd)
	deadline := time.Now().Add(streamedCallsGrace)
	for g.streamedCalls.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Shutdown drains the gateway when Drain was not called (stops
// accepting, ends the SSE streams, waits for the requests in progress
// until ctx is done), then closes the gateway's WAMP sessions and stops
// the callees and webhooks. Call it before the router shuts down. It
// returns ctx's error when requests were still running.
func (g *Server) Shutdown(ctx context.Context) error {
	err := g.Drain(ctx)
	g.mu.Lock()
	if g.shut {
		g.mu.Unlock()
		return nil
	}
	g.shut = true
	g.mu.Unlock()
	g.stopRunners()
	g.pool.closeAll()
	done := make(chan struct{})
	go func() { g.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// janitor closes idle principals' sessions.
func (g *Server) janitor() {
	defer g.bg.Done()
	every := g.opts.Limits.SessionIdle / 2
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-g.draining:
			return
		case <-t.C:
			g.pool.sweep(g.nanos())
		}
	}
}

func (g *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header()["Cache-Control"] = noStore // live: a cached "ok" would hide a dead gateway
	w.Write([]byte(`{"status":"ok"}`))
}

func (g *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	select {
	case <-g.draining:
		writeProblem(w, newProblem(http.StatusServiceUnavailable, proto.URISystemShutdown, "shutting down"))
		return
	default:
	}
	if g.opts.Ready != nil {
		if err := g.opts.Ready(); err != nil {
			writeProblem(w, newProblem(http.StatusServiceUnavailable, proto.URIUnavailable, err.Error()))
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header()["Cache-Control"] = noStore
	w.Write([]byte(`{"status":"ready"}`))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	p := newProblem(http.StatusMethodNotAllowed, URIMethodNotAllowed, "allowed: "+allow)
	p.header = map[string]string{"Allow": allow}
	writeProblem(w, p)
}

// spareConns is how many connections the gateway accepts past
// Limits.MaxConnections, for /healthz and /readyz only: when every
// connection is taken (event streams, which last, can take them all), an
// orchestrator's probes are still answered, where they waited in the
// listen backlog until they timed out and the router was restarted or
// drained. Any other request on a spare connection gets 503; every
// answer there closes it.
const spareConns = 16

// limitListener bounds the open connections: past max, up to spareConns
// more are accepted for health probes (spareConn), and past those Accept
// waits for one to close, new connections waiting in the kernel's
// backlog.
type limitListener struct {
	net.Listener
	sem      chan struct{}
	spare    chan struct{}
	done     chan struct{}
	once     sync.Once
	firstMax int // over TLS: the bytes a connection may send before its first request is read (limitConn.Read); 0: no bound

	spareMu sync.Mutex
	spareBy map[netip.Addr]int // spare connections open per client address; guarded by spareMu
}

// spareConnsPerAddress bounds the spare connections one client address
// holds: without it one address opening spareConns connections that never
// end their request's header held them all for ReadHeaderTimeout (and,
// reconnecting, for good), and the probes waited in the backlog again. A
// kubelet's liveness, readiness and startup probes fit.
const spareConnsPerAddress = 4

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max), spare: make(chan struct{}, spareConns), done: make(chan struct{}), spareBy: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.accept()
		if err != nil {
			return nil, err
		}
		if !c.spare {
			return c, nil
		}
		if c.addr, c.counted = l.takeSpare(c.RemoteAddr()); c.counted || !c.addr.IsValid() {
			return c, nil
		}
		// The address holds its share of the spare connections: this
		// one is closed at once (its slot back), the next one accepted.
		c.Close()
	}
}

// takeSpare counts a spare connection of the client address of ra,
// reporting false when the address already holds spareConnsPerAddress
// (or when ra names no IP address: not counted).
func (l *limitListener) takeSpare(ra net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(ra.String())
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spareBy[a] >= spareConnsPerAddress {
		return a, false
	}
	l.spareBy[a]++
	return a, true
}

// dropSpare uncounts a spare connection of a (takeSpare).
func (l *limitListener) dropSpare(a netip.Addr) {
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spareBy[a]--; l.spareBy[a] <= 0 {
		delete(l.spareBy, a)
	}
}

// accept waits for a slot, ordinary or spare, and accepts a connection.
func (l *limitListener) accept() (*limitConn, error) {
	slot := l.sem
	select {
	case l.sem <- struct{}{}:
	default:
		select {
		case l.sem <- struct{}{}:
		case l.spare <- struct{}{}:
			slot = l.spare
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	for pause := 5 * time.Millisecond; err != nil && (errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)); pause = min(2*pause, time.Second) {
		// net/http's Serve retries EMFILE and ENFILE but returns on these
		// two, which would stop the gateway for good while the process
		// runs on: pause and accept again, as it does for the others.
		select {
		case <-time.After(pause):
		case <-l.done:
			<-slot
			return nil, net.ErrClosed
		}
		c, err = l.Listener.Accept()
	}
	if err != nil {
		<-slot
		return nil, err
	}
	if slot == l.spare {
		// The spare slot was taken while every ordinary one was: one
		// may have been given back while Accept waited, and the
		// connection is then an ordinary one (not refused 503).
		select {
		case l.sem <- struct{}{}:
			<-l.spare
			slot = l.sem
		default:
		}
	}
	lc := &limitConn{Conn: c, spare: slot == l.spare, firstLeft: l.firstMax}
	lc.release = func() {
		if lc.counted {
			l.dropSpare(lc.addr)
		}
		<-slot
	}
	return lc, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
	spare   bool       // taken past Limits.MaxConnections: health probes only
	addr    netip.Addr // a spare connection's client address (limitListener.spareBy)
	counted bool       // counted in spareBy under addr

	// Over TLS, the bytes the client may still send before its first
	// request (HTTP/2: its preface) is read (firstLeft, on the reading
	// goroutine), until read says one was (ConnState); 0 for no bound.
	firstLeft int
	read      atomic.Bool
	tc        *tls.Conn // over TLS, the connection over this one (set at StateNew, before it is served)
}

// tlsFirstReadMax is what a client of the gateway's TLS port may send
// before its first request is read, given the server's MaxHeaderBytes:
// its handshake flights (32 KiB, as the event loops' TLS listeners
// allow: a browser's ClientHello is about 2 KiB, the rest under 1 KiB),
// that request's head (net/http reads up to MaxHeaderBytes and its slop)
// and the records crypto/tls may read ahead of it (two whole ones). An
// HTTP/2 client's first request is its 24-byte preface. crypto/tls reads
// a handshake message whole before it looks at it, up to 64 KiB, and once
// the versions are agreed a Certificate message of up to 256 KiB, asked
// for or not, besides its record buffer, for as long as the handshake's
// deadline (read_header_timeout) allows: before, one connection held
// ~360 KiB for it, 10,000 (max_connections) about 3.5 GB, where
// max_header holds a plaintext client to 16 KiB.
func tlsFirstReadMax(maxHeaderBytes int) int {
	return 32<<10 + maxHeaderBytes + netHTTPHeaderSlop + 2*(5+16384+2048)
}

// errTLSFirstRead fails the read of a TLS connection past tlsFirstReadMax:
// crypto/tls fails the handshake with it (net/http logs "TLS handshake
// error" at debug level), or net/http the request head.
var errTLSFirstRead = errors.New("gateway: more input before the first request than a TLS handshake and a request head take")

// tlsPostHandshakeMax bounds a handshake message a TLS client sends after
// its first request, its 4-byte header included, as the event loops'
// TLS listeners bound it (loop/tls.go): crypto/tls keeps one until it is
// whole, up to 64 KiB (a Certificate 256 KiB), for as long as the client
// takes, which a connection carrying an event stream or a long call makes
// without end. A client has one to send: a TLS 1.3 KeyUpdate, 5 bytes
// (crypto/tls refuses a TLS 1.2 renegotiation once it has the message).
const tlsPostHandshakeMax = 1 << 10

// errTLSPostHandshake fails the read of a TLS connection whose client
// sends a longer one: crypto/tls fails the connection with it.
var errTLSPostHandshake = errors.New("gateway: TLS post-handshake handshake message longer than 1 KiB")

// Read implements net.Conn, bounding a TLS client's input before its
// first request (tlsFirstReadMax) and, after it, the handshake message
// crypto/tls may be holding (tlsPostHandshakeMax): crypto/tls reads its
// transport with its input locked, so c.tc's buffers are not in use
// elsewhere.
func (c *limitConn) Read(p []byte) (int, error) {
	if c.firstLeft == 0 || c.read.Load() {
		if c.tc != nil {
			if b, a := tlsinput.HandPending(c.tc); max(b, a) > tlsPostHandshakeMax {
				return 0, errTLSPostHandshake
			}
		}
		return c.Conn.Read(p)
	}
	if c.firstLeft < 0 {
		return 0, errTLSFirstRead
	}
	n, err := c.Conn.Read(p[:min(len(p), c.firstLeft)])
	if c.firstLeft -= n; c.firstLeft == 0 {
		c.firstLeft = -1
	}
	return n, err
}

// tlsConnState tells a TLS connection's limitConn (the server's ConnState
// hook) its tls.Conn when it is new, and that a request was read once it
// is no longer new: its input is then no longer bounded by
// tlsFirstReadMax, but by tlsPostHandshakeMax.
func tlsConnState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	lc, ok := tc.NetConn().(*limitConn)
	switch {
	case !ok:
	case st == http.StateNew:
		lc.tc = tc
	default:
		lc.read.Store(true)
	}
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// spareKey marks the context of a request on a spare connection.
type spareKey struct{}

// inflightKey keys a connection's count of the requests it carries in
// progress (serveBound).
type inflightKey struct{}

// connContext is the http.Server's ConnContext: it marks the requests of
// a spare connection (limitListener), and gives each connection its
// count of requests in progress (serveBound).
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = context.WithValue(ctx, inflightKey{}, new(atomic.Int32))
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitConn); ok && lc.spare {
		return context.WithValue(ctx, spareKey{}, true)
	}
	return ctx
}

// serveSpare answers a request on a spare connection: /healthz and
// /readyz as anywhere, anything else 503; the connection closes after it.
// It reports false for a request on an ordinary connection.
func (g *Server) serveSpare(w http.ResponseWriter, r *http.Request) bool {
	if r.Context().Value(spareKey{}) == nil {
		return false
	}
	w.Header().Set("Connection", "close")
	switch r.URL.Path {
	case "/healthz", "/readyz":
		return false
	}
	g.refused(refusedConnections)
	p := tooBusy(http.StatusServiceUnavailable, "maximum connection count reached")
	g.otherLbl.observe(p.status, 0)
	writeProblem(w, p)
	return true
}
