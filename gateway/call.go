package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Calls, publications and subscriptions on an in-process session. The
// methods of sess here run on the shard's goroutine (jobs posted through
// shardQ); the Server methods run on HTTP goroutines.

// call is a CALL waiting for its answer. The shard fills its channels
// without blocking; the HTTP goroutine reads them.
type call struct {
	final chan callReply // capacity 1: the RESULT or ERROR
	prog  chan callReply // progressive RESULTs (nil when not asked for); bounded
	// progBytes counts the payload bytes in prog; past progMax (and one
	// result) the call is cut as a slow reader, as an event stream is.
	progBytes atomic.Int64
	progMax   int64 // static
	// writeSince, writing, gate: when the handler's current write or flush
	// began (0 between them; sseWriter.since), the bytes of the event it
	// is writing (counted in the SSE total until the write returns) and
	// its write gate, for the SSE total's reaper (sseQueue); cut:
	// the reaper cut it.
	writeSince atomic.Int64
	writing    atomic.Int64
	gate       atomic.Pointer[writeGate]
	cut        atomic.Bool
	// over holds, in order after those in prog, the progressive results
	// that did not fit prog (guarded by overMu; overN is its length, read
	// without it; more, capacity 1, wakes the handler), as an event
	// stream's over does: the router delivers a read's worth of YIELDs in
	// one turn of its event loop, faster than any client is written to,
	// and a callee's burst of more small progressive results than
	// Limits.SSEQueue cut a caller reading them promptly, at its first
	// event. Bounded by progMax bytes with prog's, and to progMax /
	// progOverCost entries, each costing the SSE total progOverCost more.
	overMu sync.Mutex
	over   []callReply
	overN  atomic.Int32
	more   chan struct{}
	req    uint64 // owned by shard: the CALL's request id once sent
	s      *sess  // the session, and the CALL, for run
	cr     callReq
	// buf holds the final RESULT's response document (callReply.doc,
	// args and kwargs alias it). The shard fills it before finish; the
	// HTTP goroutine owns it from the receive on c.final until recycle,
	// so that a recycled record reuses it.
	buf []byte
	// onDone, when set, takes the final answer instead of the channel
	// final, on the session's shard goroutine (the event loop's HTTP
	// lane, lane.go).
	onDone func(*call, callReply)
}

// run implements job: it sends the CALL (a call posts itself, so that the
// request path allocates no closure).
func (c *call) run() { c.s.startCall(c, &c.cr) }

// maxKeptResult is the largest result buffer a recycled call record
// keeps; larger ones go to the garbage collector with their reply.
const maxKeptResult = 16 << 10

// calls recycles call records (with their channels) whose final answer
// was received: nothing sends to them any more.
var calls = sync.Pool{New: func() any { return &call{final: make(chan callReply, 1)} }}

// callReply is a RESULT or an ERROR; args and kwargs are JSON owned by the
// reply.
type callReply struct {
	doc          []byte // a final RESULT's response document (args and kwargs alias it)
	args, kwargs []byte
	err          string // the error URI of an ERROR
	detail       string // for errors the gateway makes up
	// mark: the router's mark of its own ERROR (route.KeyForCallee: the
	// request's fault; route.KeyForCaller: the callee's answer's).
	mark routerMark
	// status, when set, is the HTTP status of an error the gateway made
	// up itself (a refused payload: problemNotWAMP), which no errors table
	// maps.
	status int
}

func (c *call) finish(r callReply) {
	if f := c.onDone; f != nil {
		c.onDone = nil // answered once
		f(c, r)
		return
	}
	select {
	case c.final <- r:
	default: // already answered
	}
}

// callReq is what an HTTP request asks the router to call.
type callReq struct {
	uri          string
	args, kwargs []byte // JSON array / object, validated; nil when absent
	timeout      time.Duration
	discloseMe   bool
	// wamp: args and kwargs were found WAMP values (wampJSON) on the
	// request's goroutine; set only by checkWAMP. Without it startCall
	// checks them on the shard (the event loop: a request's goroutine is
	// the better place for a walk of up to MaxBody bytes).
	wamp bool
}

// checkWAMP checks args and kwargs as the router checks a WebSocket
// peer's (wampJSON) and records that they passed (callReq.wamp), so that
// startCall need not walk them again on the shard: the 400 a client gets
// for a binary string with malformed base64, whoever built the call.
func (cr *callReq) checkWAMP() *problem { return checkWAMPOnce(&cr.wamp, cr.args, cr.kwargs) }

// checkWAMPOnce checks args and kwargs (wampJSON) unless *checked says
// they passed already, and records that they did.
func checkWAMPOnce(checked *bool, args, kwargs []byte) *problem {
	if !*checked {
		if !wampJSON(args, kwargs) {
			return problemNotWAMP()
		}
		*checked = true
	}
	return nil
}

// startCall sends the CALL. Owned by shard.
//
// Every gateway CALL goes through here, and the router takes an
// in-process session's payload as it is (it checks a WebSocket peer's when
// it decodes it): a payload no request's goroutine checked (checkWAMP) is
// checked here, so that a JSON callee never gets a binary string it
// cannot decode (it would drop its connection).
func (s *sess) startCall(c *call, cr *callReq) {
	if s.closed {
		c.finish(callReply{err: proto.URIUnavailable, detail: "the gateway's WAMP session closed"})
		return
	}
	if !cr.wamp && !wampJSON(cr.args, cr.kwargs) {
		p := problemNotWAMP()
		c.finish(callReply{err: p.uri, detail: p.detail, status: p.status})
		return
	}
	if s.calls == nil {
		s.calls = map[uint64]*call{}
	}
	req := s.nextReq()
	c.req = req
	s.calls[req] = c
	m := &s.out
	m.Reset()
	m.Type = proto.CodeCall
	m.Request = req
	m.URI = append(s.uri[:0], cr.uri...)
	s.uri = m.URI
	if cr.timeout > 0 {
		ms := uint64(cr.timeout / time.Millisecond)
		if ms == 0 {
			ms = 1
		}
		m.Opt.SetUint(proto.KeyTimeout, ms)
	}
	if c.prog != nil {
		m.Opt.SetBool(proto.KeyReceiveProgress, true)
	}
	if cr.discloseMe {
		m.Opt.SetBool(proto.KeyDiscloseMe, true)
	}
	if cr.args != nil {
		m.Args = proto.Raw{Ser: proto.JSON, B: cr.args}
	}
	if cr.kwargs != nil {
		m.Kwargs = proto.Raw{Ser: proto.JSON, B: cr.kwargs}
	}
	s.q.shard.ReceiveMessage(s.rs, m)
}

// cancelCall sends CANCEL (killnowait) for c if it is still pending. Owned
// by shard.
func (s *sess) cancelCall(c *call) {
	if s.calls[c.req] != c || s.closed {
		return
	}
	delete(s.calls, c.req)
	s.sendCancel(c.req)
}

func (s *sess) sendCancel(req uint64) {
	if s.closed {
		return
	}
	m := &s.out
	m.Reset()
	m.Type = proto.CodeCancel
	m.Request = req
	m.Opt.SetString(proto.KeyMode, "killnowait")
	s.q.shard.ReceiveMessage(s.rs, m)
}

// result handles a RESULT, or an ERROR for a CALL. Owned by shard.
func (s *sess) result(m *proto.Message) {
	c := s.calls[m.Request]
	if c == nil {
		return // canceled meanwhile
	}
	progress := m.Type == proto.CodeResult && m.Opt.Bool(proto.KeyProgress, false)
	if progress && c.prog == nil {
		return // not asked for
	}
	r := callReply{}
	switch {
	case m.Type == proto.CodeResult && !progress:
		// The final RESULT: the response document {"args":...,"kwargs":...}
		// is built here, into the record's buffer (recycled with the
		// record), so that the HTTP goroutine writes it with one Write;
		// args and kwargs alias it.
		r.doc, r.args, r.kwargs = appendResultDoc(c.buf[:0], m.Args.B, m.Kwargs.B)
		if cap(r.doc) <= maxKeptResult {
			c.buf = r.doc[:0]
		}
	default:
		// Progressive results queue up, each with its own bytes.
		r.args, r.kwargs = copyPayload(m.Args.B, m.Kwargs.B)
	}
	if m.Type == proto.CodeError {
		r.err = string(m.URI)
		r.mark = markOf(r.err, m.Dict)
		if r.mark == markShutdown {
			// A router's stop ended the call (this router's, the
			// callee's node's): answered as a session the stop ended,
			// wamp.close.system_shutdown (503, which the errors tables
			// may map), its detail the router's. Since e130953 the
			// router answers such calls wamp.error.canceled before its
			// GOODBYE, which was 409 Conflict here. The gateway's own
			// CANCEL gets no answer here (the call is gone from calls).
			r.err = proto.CloseSystemShutdown
		}
	} else if progress {
		// Bounded in results (the channel) and in bytes (Limits.SSEBuffer;
		// one result always fits).
		// Counted in the SSE total too (Limits.SSEBufferTotal), whose
		// reaper cuts the calls and streams whose clients stopped reading.
		n := int64(len(r.args) + len(r.kwargs))
		q := c.progBytes.Add(n)
		s.g.addSSEBytes(n)
		if c.progMax <= 0 || q <= c.progMax || q == n {
			if c.overN.Load() == 0 { // over, appended to here only, is empty
				select {
				case c.prog <- r:
					return
				default:
				}
			}
			if c.more != nil && int64(c.overN.Load()) < c.progMax/progOverCost {
				c.overflow(s.g, r)
				return
			}
		}
		c.progBytes.Add(-n)
		s.g.sse.bytes.Add(-n)
		// The HTTP client reads the stream more slowly than the callee
		// produces: cut it rather than buffer without limit.
		s.cutCall(c)
		return
	}
	delete(s.calls, m.Request)
	c.finish(r)
}

// cutCall ends a call whose HTTP client reads its progressive results
// more slowly than the callee produces them: CANCEL, and the client's
// stream ends with a problem. Its queued results go at once (it is no
// longer pending, so none is queued after): the handler may be blocked
// writing to a client that takes nothing. Owned by shard.
func (s *sess) cutCall(c *call) {
	if s.calls[c.req] != c {
		return // answered, canceled or cut meanwhile
	}
	req := c.req
	delete(s.calls, req)
	c.dropProgress(s.g)
	// The gateway's own refusal, 503 as an event stream's cut (endedBy):
	// not an application error, which the status tables would make it
	// (application_error_status, 502 by default).
	c.finish(callReply{err: URISlowReader, detail: "the client did not read the progressive results fast enough", status: http.StatusServiceUnavailable})
	s.g.metrics.sseCut.Add(1)
	s.q.post(func() { s.sendCancel(req) })
}

// held counts the event its handler is writing with the results queued,
// as stream.held does: a progressive result larger than Limits.SSEBuffer
// is taken into the empty queue, and a client that does not read holds
// it, or the final result, in a blocked write until Limits.WriteTimeout.
func (c *call) held() (int64, int, int64) {
	return c.progBytes.Load() + c.writing.Load(), len(c.prog) + int(c.overN.Load()), c.writeSince.Load()
}

// progOverCost is what an entry of a call's over costs the SSE total on
// top of its payload: the callReply (112 bytes) and the slice's room to
// grow.
const progOverCost = 128

// overflow queues r in over, after every result in prog, and wakes the
// handler. Owned by shard.
func (c *call) overflow(g *Server, r callReply) {
	c.overMu.Lock()
	c.over = append(c.over, r)
	c.overN.Store(int32(len(c.over)))
	c.overMu.Unlock()
	g.addSSEBytes(progOverCost)
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// next returns the oldest progressive result queued (prog's, then
// over's), false when none waits. On the handler's goroutine.
func (c *call) next(g *Server) (callReply, bool) {
	select {
	case r := <-c.prog:
		return r, true
	default:
	}
	if c.overN.Load() == 0 {
		return callReply{}, false
	}
	c.overMu.Lock()
	defer c.overMu.Unlock()
	select {
	case r := <-c.prog:
		return r, true
	default:
	}
	if len(c.over) == 0 {
		return callReply{}, false
	}
	r := c.over[0]
	c.over[0] = callReply{}
	c.over = c.over[1:]
	if len(c.over) == 0 {
		c.over = nil
	}
	c.overN.Store(int32(len(c.over)))
	g.sse.bytes.Add(-progOverCost)
	return r, true
}

// cutForTotal implements sseQueue: the call is cut on its shard; a write
// blocked on its client ends now.
func (c *call) cutForTotal() bool {
	if !c.cut.CompareAndSwap(false, true) {
		return false
	}
	s := c.s
	s.q.post(func() {
		if s.calls[c.req] == c {
			s.cutCall(c)
		} else {
			// Answered: the write of its final event is ended, a cut
			// as a slow reader too.
			s.g.metrics.sseCut.Add(1)
		}
	})
	if wg := c.gate.Load(); wg != nil {
		wg.end()
	}
	return true
}

// dropProgress lets the progressive results still queued go, when the
// call's handler has ended: on the shard after the call stopped being
// pending, so that none is queued after it.
func (c *call) dropProgress(g *Server) {
	for {
		pr, ok := c.next(g)
		if !ok {
			return
		}
		n := int64(len(pr.args) + len(pr.kwargs))
		c.progBytes.Add(-n)
		g.sse.bytes.Add(-n)
	}
}

// copyPayload copies args and kwargs into one new allocation; nil stays
// nil.
func copyPayload(args, kwargs []byte) (a, k []byte) {
	n := len(args) + len(kwargs)
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, n)
	buf = append(buf, args...)
	buf = append(buf, kwargs...)
	if args != nil {
		a = buf[:len(args):len(args)]
	}
	if kwargs != nil {
		k = buf[len(args):n:n]
	}
	return a, k
}

// appendResultDoc appends a call's response document, {"args":[...],
// "kwargs":{...}} ([] and {} when absent), to b and returns it with its
// args and kwargs (nil when absent) aliasing it.
func appendResultDoc(b, args, kwargs []byte) (doc, a, k []byte) {
	if n := len(resultOpen) + len(resultMid) + len(resultClose) + len(args) + len(kwargs) + 4; cap(b) < n {
		b = make([]byte, 0, n)
	}
	b = append(b, resultOpen...)
	if len(args) > 0 {
		i := len(b)
		b = append(b, args...)
		a = b[i:len(b):len(b)]
	} else {
		b = append(b, emptyArgs...)
	}
	b = append(b, resultMid...)
	if len(kwargs) > 0 {
		i := len(b)
		b = append(b, kwargs...)
		k = b[i:len(b):len(b)]
	} else {
		b = append(b, emptyKwargs...)
	}
	b = append(b, resultClose...)
	return b, a, k
}

// call runs one CALL for an HTTP request and waits for its answer. The
// router enforces the call's timeout (every bridge and route call has
// one) and answers wamp.error.timeout; a session that ends fails its
// calls. When ctx ends first (the client went away), the call is
// canceled.
//
// It returns the call record with the reply: the reply's doc, args and
// kwargs stay valid until recycle is called with it (nil when there is
// nothing to recycle: the record may still be answered by the shard).
func (g *Server) call(ctx context.Context, s *sess, cr *callReq) (callReply, *call) {
	if ctx.Err() != nil {
		// The client went away while the request waited for a session
		// (one of its principal opening, up to 10 s): no CALL. Before,
		// the CALL went out and its CANCEL after it, and the callee was
		// invoked for nobody (one that does not announce call canceling
		// ran the call to its end).
		return callReply{err: proto.URICanceled, detail: "the client went away"}, nil
	}
	c := calls.Get().(*call)
	c.s, c.cr = s, *cr
	if err := s.q.postJob(c); err != nil {
		c.s, c.cr = nil, callReq{}
		calls.Put(c)
		return callReply{err: proto.URISystemShutdown, detail: "the router is not running"}, nil
	}
	select {
	case r := <-c.final:
		c.s, c.cr, c.req = nil, callReq{}, 0
		return r, c
	case <-ctx.Done():
		s.q.post(func() { s.cancelCall(c) }) // c is not recycled: the shard may still answer it
		return callReply{err: proto.URICanceled, detail: "the client went away"}, nil
	}
}

// recycle returns a call record that call returned, once its reply has
// been written. Safe on nil.
func recycle(c *call) {
	if c != nil {
		calls.Put(c)
	}
}

// pubReq is what an HTTP request asks the router to publish.
type pubReq struct {
	uri          string
	args, kwargs []byte
	retain       bool
	discloseMe   bool
	// eligible/exclude lists, JSON arrays or nil
	exclude, eligible                 []byte
	excludeAuthID, eligibleAuthID     []byte
	excludeAuthRole, eligibleAuthRole []byte
	wamp                              bool // as callReq's: set by checkWAMP
	// client is the HTTP client's address (http.Request.RemoteAddr) when
	// the principal is one every client without credentials shares: the
	// router counts a retained event in that address's share of the
	// realm's retained events (route.Shard.ReceiveMessageFrom), not in the
	// shared session's, so that one client cannot take every other's.
	client string
	// cred is the bearer token's credential (bearerCredential) of a
	// retained publication, nil for others: its retained event is dropped
	// when that token is revoked (route.Shard.ReceiveMessageWith).
	cred *route.Credential
}

// checkWAMP is callReq.checkWAMP for a publication.
func (pr *pubReq) checkWAMP() *problem { return checkWAMPOnce(&pr.wamp, pr.args, pr.kwargs) }

// publish runs a PUBLISH (always acknowledged, so that an authorization
// failure reaches the HTTP client) and returns the publication id. Owned
// by shard. As startCall, it checks a payload no request's goroutine
// checked: JSON subscribers would drop their connections on it.
func (s *sess) publish(pr *pubReq) *syncReply {
	if s.closed {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the gateway's WAMP session closed"}
	}
	if !pr.wamp && !wampJSON(pr.args, pr.kwargs) {
		p := problemNotWAMP()
		return &syncReply{done: true, typ: proto.CodeError, err: p.uri, detail: p.detail, status: p.status}
	}
	m := &s.out
	m.Reset()
	m.Type = proto.CodePublish
	m.Request = s.nextReq()
	m.URI = []byte(pr.uri)
	m.Opt.SetBool(proto.KeyAcknowledge, true)
	// The gateway's sessions are shared by a principal's requests and
	// streams: its SSE streams and webhooks must get what it publishes.
	m.Opt.SetBool(proto.KeyExcludeMe, false)
	if pr.retain {
		m.Opt.SetBool(proto.KeyRetain, true)
	}
	if pr.discloseMe {
		m.Opt.SetBool(proto.KeyDiscloseMe, true)
	}
	for _, l := range []struct {
		k proto.Key
		v []byte
	}{{proto.KeyExclude, pr.exclude}, {proto.KeyEligible, pr.eligible}, {proto.KeyExcludeAuthID, pr.excludeAuthID},
		{proto.KeyEligibleAuthID, pr.eligibleAuthID}, {proto.KeyExcludeAuthRole, pr.excludeAuthRole}, {proto.KeyEligibleAuthRole, pr.eligibleAuthRole}} {
		if l.v != nil {
			m.Opt.SetRaw(l.k, proto.Raw{Ser: proto.JSON, B: l.v})
		}
	}
	if pr.args != nil {
		m.Args = proto.Raw{Ser: proto.JSON, B: pr.args}
	}
	if pr.kwargs != nil {
		m.Kwargs = proto.Raw{Ser: proto.JSON, B: pr.kwargs}
	}
	return s.requestFrom(m, nil, true, pr.client, pr.cred)
}

// runSync posts f to the session's shard and waits for its reply, and for
// a pending reply's answer (syncReply), for at most Server.syncWait in
// all.
func (g *Server) runSync(s *sess, f func() *syncReply) *syncReply { return g.runSyncStop(s, f, nil) }

// errStopped is runSyncStop's reply when its runner stopped while the
// answer was pending.
var errStopped = &syncReply{done: true, typ: proto.CodeError, err: proto.URISystemShutdown, detail: "the runner stopped"}

// runSyncStop is runSync for a runner (an HTTP callee, a webhook): it
// gives up a pending answer when stop is closed (errStopped), so that a
// reload or a shutdown does not wait for a single registration's mesh-wide
// claim, up to the claim store's few seconds when it is unreachable.
func (g *Server) runSyncStop(s *sess, f func() *syncReply, stop <-chan struct{}) *syncReply {
	ch := make(chan *syncReply, 1)
	if err := s.q.post(func() { ch <- f() }); err != nil {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URISystemShutdown, detail: "the router is not running"}
	}
	t := time.NewTimer(g.syncWait)
	defer t.Stop()
	late := &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the router did not answer in time"}
	select {
	case r := <-ch:
		if r.wait == nil { // answered (wait is set before r is sent and never changes)
			return r
		}
		select {
		case <-r.wait:
			return r
		case <-t.C:
			s.q.post(func() { s.forget(r) })
			return late
		case <-stop:
			s.q.post(func() { s.forget(r) })
			return errStopped
		}
	case <-t.C:
		return late
	}
}
