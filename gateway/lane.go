package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The gateway's side of the event loop's HTTP lane (package loop, lane.go).
//
// When the gateway listens through the lane (StartLane), an event loop
// reads its connections and serves the bridge's calls itself,
// POST /wamp/{realm}/call/{procedure} answered with JSON: the request, the
// CALL, its RESULT and the response stay on the goroutine of the loop's
// router shard, with a pooled session of the principal on that shard, and
// no thread crossing between net/http and the loop. Every other request
// (the other endpoints, routes, SSE, CORS, bearer tokens, anything
// malformed) hands its connection to net/http (HandOff), which serves it
// as before: same handlers, limits and answers.
//
// A call whose principal has no session open on the loop's shard yet
// runs as net/http's does, on a goroutine (opening the session and
// waiting for the answer), and its answer is written back on the loop.

// LaneWriter answers one request of the event loop's HTTP lane; its
// methods run on the goroutine of router shard Shard() (loop.LaneWriter).
type LaneWriter interface {
	Shard() int
	Respond(resp []byte, close bool)
	OnClose(f func())
	// OnWritten sets f to run once the answer Respond writes is written
	// whole to the kernel, or the connection closes; false when the
	// request no longer waits for an answer.
	OnWritten(f func()) bool
}

const patBridgeCall = "/wamp/{realm}/call/{procedure}"

// laneCall is one lane request in progress.
type laneCall struct {
	g     *Server
	w     LaneWriter
	c     *call
	adm   admission // the request's in-flight slots while lc holds them
	start time.Time
	shard int  // the lane's router shard
	close bool // the client asked for Connection: close
	gone  bool // the connection closed first; owned by the lane's shard
	// queued: its answer waits to be written (Server.laneUnwritten);
	// owned by the lane's shard.
	queued bool
	rw     laneRW
	out    []byte

	closedFn  func()                 // static: lc.closed
	doneFn    func(*call, callReply) // static: lc.finish
	writtenFn func()                 // static: lc.written
}

var laneCalls sync.Pool // of *laneCall

// testHookLaneAdmitted, set by tests only, runs in ServeLane once the
// request holds its principal's in-flight slot.
var testHookLaneAdmitted atomic.Pointer[func()]

func init() {
	laneCalls.New = func() any {
		lc := &laneCall{rw: laneRW{h: http.Header{}}}
		lc.closedFn = lc.closed
		lc.doneFn = lc.finish
		lc.writtenFn = lc.written
		return lc
	}
}

// ServeLane implements loop.Lane's Serve (cmd adapts the types): it serves
// a bridge call on the event loop, or returns false to hand the
// connection to net/http.
func (g *Server) ServeLane(r *http.Request, body []byte, w LaneWriter) (served bool) {
	// Nothing before fromProxy reads RemoteAddr. A request handed to
	// net/http is read there again, and dispatch runs fromProxy on it:
	// run before these returns too, it counted (and could log) a request
	// from a trusted proxy naming no client twice.
	if g.isDraining() {
		// Shutdown has begun: net/http's listener is closed, and a
		// request handed to it was dropped without an answer (EOF after
		// the request was sent), while on the gateway's own listener new
		// connections are refused. The loops still accept on this port
		// until the sessions' drain: say so, and close.
		rw := laneRW{h: http.Header{}}
		p := newProblem(http.StatusServiceUnavailable, proto.URISystemShutdown, "shutting down")
		// Another node, or this one restarted, may take it in a moment.
		p.header = map[string]string{"Retry-After": "1"}
		writeProblem(&rw, p)
		w.Respond(rw.appendResponse(nil, true), true)
		return true
	}
	if r.Method != http.MethodPost || r.Header["Origin"] != nil || !g.laneHostOK(r.Host) {
		return false
	}
	realm, proc, ok := bridgeCallPath(r.URL)
	if !ok || acceptsSSE(r) || !acceptsJSON(r) || g.credentialOf(r) == credBearer {
		return false
	}
	if _, pattern := g.access.Load().mux.Handler(r); pattern != patBridgeCall {
		return false // a route or mount of the configuration serves it
	}
	g.fromProxy(r) // before anything reads RemoteAddr
	lc := laneCalls.Get().(*laneCall)
	k := w.Shard()
	lc.g, lc.w, lc.start, lc.close, lc.shard = g, w, time.Now(), r.Close, k
	// held is the in-flight slot while this function owns it: until the
	// slow path's goroutine or the routed call (finish, or closed when
	// the connection goes first) takes it over.
	var held admission
	defer func() {
		// The lane runs on an event loop: a panic here must not take the
		// router down. lc may be answered and recycled already (another
		// loop may hold it now), so the answer is made without it, and
		// the connection closes after it (its state is unknown; Respond
		// does nothing if the request was answered).
		if p := recover(); p != nil {
			g.log.Error("gateway: lane panic", "panic", p, "stack", string(debug.Stack()))
			rw := laneRW{h: http.Header{}}
			writeProblem(&rw, newProblem(http.StatusInternalServerError, "edgewamp.error.internal", "internal error"))
			w.Respond(rw.appendResponse(nil, true), true)
			served = true
			if held.ip != nil {
				g.pool.release(held)
			}
		}
	}()
	if r.ContentLength > int64(g.opts.Limits.MaxBody) {
		lc.problem(newProblem(http.StatusRequestEntityTooLarge, proto.URIPayloadSizeExceeded, "the body exceeds "+strconv.Itoa(g.opts.Limits.MaxBody)+" bytes"))
		return true
	}
	if len(body) > 0 {
		if p := repeated(r.Header, "Content-Type"); p != nil {
			lc.problem(p)
			return true
		}
		if p := checkJSONType(headerValue(r.Header, "Content-Type")); p != nil {
			lc.problem(p)
			return true
		}
		if p := checkEncoding(r.Header); p != nil {
			lc.problem(p)
			return true
		}
	}
	body, p := checkBody(body)
	if p != nil {
		lc.problem(p)
		return true
	}
	cr, who, p := g.callRequest(r, realm, proc, body, nil)
	if p != nil {
		lc.problem(p)
		return true
	}
	a, p := g.pool.admit(who.id, r.RemoteAddr)
	if p != nil {
		lc.problem(p)
		return true
	}
	lc.adm, held = a, a
	if h := testHookLaneAdmitted.Load(); h != nil {
		(*h)()
	}
	s := g.pool.local(a.ip, k)
	if s == nil {
		held = admission{}
		g.laneSlow(lc, cr)
		return true
	}
	// s is on this loop's shard: the CALL is routed now, while body (in
	// the loop's buffer) is valid, and the answer comes back here.
	c := calls.Get().(*call)
	c.s, c.cr, c.onDone = s, cr, lc.doneFn
	lc.c = c
	w.OnClose(lc.closedFn)
	held = admission{}
	c.run()
	return true
}

// laneSlow runs a lane call on a goroutine, as net/http's requests do,
// when the principal has no session on the lane's shard: it opens one (or
// uses one elsewhere) and writes the answer back on the lane's shard.
func (g *Server) laneSlow(lc *laneCall, cr callReq) {
	// The body lives in the loop's buffer only during Serve.
	cr.args, cr.kwargs = copyPayload(cr.args, cr.kwargs)
	g.laneSlowCalls.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	lc.w.OnClose(cancel)
	a := lc.adm // the goroutine's from here on
	lc.adm = admission{}
	q := g.queues[lc.shard]
	go func() {
		defer cancel()
		s, p := g.pool.pick(a) // releases a when it fails
		if p != nil {
			q.post(func() { lc.problem(p) })
			return
		}
		res, c := g.call(ctx, s, &cr)
		// ctx ends early only when the connection closed (OnClose): the
		// call was canceled for a client that went away, counted as
		// such (499) as net/http's and the fast path's are (closed),
		// not as the 409 of wamp.error.canceled, which nobody reads.
		gone := res.err == proto.URICanceled && ctx.Err() != nil
		if q.post(func() {
			if gone {
				g.pool.release(a)
				lc.g.laneLbl.observe(StatusClientClosed, time.Since(lc.start))
				recycle(c)
				lc.recycle()
				return
			}
			lc.adm = a
			lc.answerHeld(res)
			recycle(c)
		}) != nil {
			g.pool.release(a) // the loop is gone, and the connection with it
		}
	}()
}

// finish takes the call's answer, on the lane's shard (the session's),
// answers the request and recycles what it can.
func (lc *laneCall) finish(c *call, r callReply) {
	if lc.gone {
		return // closed already released and canceled; c is dropped
	}
	lc.c = nil
	lc.answerHeld(r) // may recycle lc; r aliases c's buffer, recycled after
	c.s, c.cr, c.req = nil, callReq{}, 0
	recycle(c)
}

// answerHeld answers a call whose request holds its in-flight slots
// (lc.adm), and gives them back, with lc, once the answer is written to
// the connection (LaneWriter.OnWritten), or the connection closes: a
// client that does not read its answers holds no more of them than
// max_in_flight_per_address (and the principal's and the gateway's
// bounds) allow, as on net/http (bridgeCall). Before, the slots went back
// when the answer came, and one address's connections each held one
// unread answer, however many. Owned by the lane's shard.
func (lc *laneCall) answerHeld(r callReply) {
	if !lc.w.OnWritten(lc.writtenFn) {
		// The connection closed meanwhile: nothing to write.
		lc.written()
		return
	}
	lc.queued = true
	lc.g.laneUnwritten.Add(1)
	lc.answer(r)
}

// written gives back the request's slots and lc once its answer is
// written (or its connection closed). Owned by the lane's shard.
func (lc *laneCall) written() {
	if lc.queued {
		lc.queued = false
		lc.g.laneUnwritten.Add(-1)
	}
	if lc.adm.ip != nil {
		lc.g.pool.release(lc.adm)
		lc.adm = admission{}
	}
	lc.recycle()
}

// closed runs on the lane's shard when the connection closes before the
// answer: the call is canceled and the request counted as the client's.
func (lc *laneCall) closed() {
	lc.gone = true
	lc.g.laneLbl.observe(StatusClientClosed, time.Since(lc.start))
	if lc.adm.ip != nil {
		lc.g.pool.release(lc.adm)
		lc.adm = admission{}
	}
	if c := lc.c; c != nil {
		s := c.s
		s.q.post(func() { s.cancelCall(c) }) // c is not recycled: the shard may still answer it
	}
}

// answer writes a call's outcome as answerCall does for net/http.
func (lc *laneCall) answer(res callReply) {
	lc.g.answerCall(&lc.rw, laneReq, res, nil)
	lc.respond()
}

// problem answers with a problem document.
func (lc *laneCall) problem(p *problem) {
	writeProblem(&lc.rw, p)
	lc.respond()
	if lc.adm.ip != nil {
		lc.g.pool.release(lc.adm)
		lc.adm = admission{}
	}
	lc.recycle() // a problem is answered before any call starts
}

// laneReq stands for the request in answerCall, which asks only whether the
// client went away (a closed lane connection is never answered).
var laneReq = &http.Request{}

func (lc *laneCall) respond() {
	st := lc.rw.status
	if st == 0 {
		st = http.StatusOK
	}
	lc.out = lc.rw.appendResponse(lc.out[:0], lc.close)
	lc.w.Respond(lc.out, lc.close)
	lc.g.laneLbl.observe(st, time.Since(lc.start))
	lc.rw.reset()
}

func (lc *laneCall) recycle() {
	if cap(lc.out) > maxKeptResult {
		lc.out = nil
	}
	lc.w, lc.c, lc.adm, lc.gone = nil, nil, admission{}, false
	laneCalls.Put(lc)
}

// bridgeCallPath splits /wamp/{realm}/call/{procedure} as ServeMux does:
// segments of the escaped path, each unescaped.
func bridgeCallPath(u *url.URL) (realm, proc string, ok bool) {
	p := u.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/wamp/")
	if !ok {
		return "", "", false
	}
	realm, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	proc, ok = strings.CutPrefix(rest, "call/")
	if !ok || realm == "" || proc == "" || strings.Contains(proc, "/") {
		return "", "", false
	}
	var err error
	if strings.Contains(realm, "%") {
		if realm, err = url.PathUnescape(realm); err != nil {
			return "", "", false
		}
	}
	if strings.Contains(proc, "%") {
		if proc, err = url.PathUnescape(proc); err != nil {
			return "", "", false
		}
	}
	return realm, proc, true
}

// laneRW collects a response as an http.ResponseWriter, so that the
// lane answers with the same code as net/http's handlers.
type laneRW struct {
	h      http.Header
	status int
	body   []byte
}

func (w *laneRW) Header() http.Header { return w.h }

func (w *laneRW) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *laneRW) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

func (w *laneRW) reset() {
	clear(w.h)
	w.status = 0
	if cap(w.body) > maxKeptResult {
		w.body = nil
	}
	w.body = w.body[:0]
}

// appendResponse appends the HTTP/1.1 response.
func (w *laneRW) appendResponse(b []byte, close bool) []byte {
	st := w.status
	if st == 0 {
		st = http.StatusOK
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(st), 10)
	b = append(b, ' ')
	b = append(b, statusText(st)...)
	b = append(b, "\r\n"...)
	for k, vs := range w.h {
		if k == "Content-Length" || k == "Connection" || k == "Date" {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendHeaderValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(w.body)), 10)
	b = append(b, "\r\nDate: "...)
	b = append(b, httpDate()...)
	if close {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, w.body...)
}

// appendHeaderValue appends v without CR or LF (net/http replaces them
// with spaces too).
func appendHeaderValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// httpDate returns the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := lastDate.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &dateVal{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	lastDate.Store(d)
	return d.s
}

type dateVal struct {
	sec int64
	s   string
}

var lastDate atomic.Pointer[dateVal]

// HandOff implements loop.Lane's HandOff: net/http serves c from now on.
// It never blocks: past the queue's room the connection is closed.
func (g *Server) HandOff(c net.Conn) {
	if !g.lane.offer(c) {
		c.Close()
	}
}

// isDraining reports whether Shutdown has begun.
func (g *Server) isDraining() bool {
	select {
	case <-g.draining:
		return true
	default:
		return false
	}
}

// laneListener is the net.Listener net/http serves when the event loop
// owns the gateway's port: it yields the connections the lane hands over.
type laneListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newLaneListener() *laneListener {
	return &laneListener{ch: make(chan net.Conn, 1024), done: make(chan struct{})}
}

func (l *laneListener) offer(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	default:
		return false
	}
}

func (l *laneListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *laneListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		for {
			select {
			case c := <-l.ch:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *laneListener) Addr() net.Addr { return l.addr }

// StartLane is Start for a gateway whose port an event loop serves
// (loop.HTTPLane at addr): net/http serves what the lane hands over.
func (g *Server) StartLane(addr net.Addr) error {
	if g.opts.TLS != nil {
		return errors.New("gateway: the event loop's HTTP lane is plaintext only")
	}
	// g.lane exists from New: the loops may hand connections over before
	// this (they wait in its queue).
	g.lane.addr = addr
	return g.start(g.lane)
}

// waitLane waits until no lane request holds a session (Shutdown). The
// answers waiting for their clients to read them hold their slots, not a
// call: not waited for (the engine's shutdown closes their connections).
func (g *Server) waitLane(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for g.inflight.Load()-g.laneUnwritten.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
