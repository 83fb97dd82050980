package gateway

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// An in-process WAMP session: the gateway's route.Peer. It speaks JSON, so
// the router hands it JSON-encoded messages whose Arguments and
// ArgumentsKw go to HTTP clients as they are, and it feeds the router
// decoded messages built from HTTP requests (Shard.ReceiveMessage): no
// socket, no framing, one JSON encoding each way.
//
// Concurrency: everything marked "owned by shard" is touched only on the
// goroutine of the session's shard, inside jobs run through shardQ (which
// is how HTTP goroutines reach it) or inside Send and Close (which the
// router calls there). The HTTP side waits on channels the shard side
// fills without ever blocking.

// errSessionGone: the session closed (router shutdown, kill, reload) before
// or while a request used it.
var errSessionGone = errors.New("gateway: WAMP session closed")

// shardQ is the gateway's mailbox to one router shard: jobs queued by HTTP
// goroutines run in batches inside one Shard.Do, so that a burst of
// requests costs one event-loop wake-up and one flush, not one each.
type shardQ struct {
	shard *route.Shard // static

	mu        sync.Mutex
	jobs      []job // guarded by mu
	spare     []job // owned by shard
	scheduled atomic.Bool
	runFn     func() // static: q.run
}

// job is work for a shard's goroutine: a *call (the hot path, no closure
// to allocate) or any func() as jobFunc.
type job interface{ run() }

type jobFunc func()

func (f jobFunc) run() { f() }

func newShardQ(sh *route.Shard) *shardQ {
	q := &shardQ{shard: sh}
	q.runFn = q.run
	return q
}

// post queues f to run on the shard's goroutine. f must not block. Safe
// for concurrent use; it never blocks. It returns errSessionGone when the
// shard no longer runs anything (the router stopped): f will not run.
func (q *shardQ) post(f func()) error { return q.postJob(jobFunc(f)) }

// postJob is post for a job.
func (q *shardQ) postJob(j job) error {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	if q.scheduled.CompareAndSwap(false, true) {
		if q.shard.Do(q.runFn) != nil {
			q.mu.Lock()
			q.jobs = q.jobs[:0]
			q.mu.Unlock()
			q.scheduled.Store(false)
			return errSessionGone
		}
	}
	return nil
}

// run drains the queue on the shard's goroutine.
func (q *shardQ) run() {
	q.scheduled.Store(false)
	q.mu.Lock()
	batch := q.jobs
	q.jobs = q.spare[:0]
	q.mu.Unlock()
	for i, j := range batch {
		j.run()
		batch[i] = nil
	}
	q.spare = batch[:0]
}

// sess is one in-process session. Create it with pool.open.
type sess struct {
	g   *Server
	q   *shardQ
	key identity // static

	// Owned by shard.
	rs       *route.Session
	dec      proto.Decoder
	msg      proto.Message
	out      proto.Message
	uri      []byte // out.URI's buffer for CALLs
	req      uint64
	calls    map[uint64]*call
	subs     map[uint64]*subEntry
	invs     map[uint64]*invocation
	sync     *syncReply            // the synchronous request being handled, if any
	pending  map[uint64]*syncReply // requests the router answers later, by request id (syncReply)
	frame    *eventFrame           // the last EVENT rendered, for the publication's other subscriptions (keepFrame)
	closed   bool                  // the router ended the session (or we did)
	left     bool                  // leave sent GOODBYE: the router's GOODBYE is its answer, not its reason
	onInv    func(*sess, *proto.Message)
	onClose  func(*sess, string)
	onRevoke func(*sess, string) // a router-initiated UNREGISTERED or UNSUBSCRIBED, with its reason (HTTP callees, webhooks)

	// Shared.
	id       atomic.Uint64 // WAMP session id, from WELCOME
	dead     atomic.Bool   // closed; the pool drops it
	lastUsed atomic.Int64  // when last used (nanos: Server.nanos)
}

// Serializer implements route.Peer.
func (s *sess) Serializer() proto.Serializer { return proto.JSON }

// Transport implements route.Peer.
func (s *sess) Transport() route.TransportInfo {
	return route.TransportInfo{Type: "http", Protocol: "http.json", RemoteAddr: "gateway"}
}

// nextReq returns a fresh request id. Owned by shard.
func (s *sess) nextReq() uint64 {
	s.req++
	if s.req > proto.MaxID {
		s.req = 1
	}
	return s.req
}

// The gateway's sessions are told where a SUBSCRIBE's retained events end,
// and may register under ReservedPrefix (route.Config.InProcessURIs).
var (
	_ route.RetainedPeer  = (*sess)(nil)
	_ route.InProcessPeer = (*sess)(nil)
)

// InProcess implements route.InProcessPeer.
func (s *sess) InProcess() {}

// Send implements route.Peer: the router's messages to this session. It
// runs on the shard's goroutine, never blocks, and copies what it keeps.
func (s *sess) Send(b []byte, class route.Class) error {
	if s.closed {
		return route.ErrPeerClosed
	}
	m := &s.msg
	if err := s.dec.Decode(proto.JSON, b, m); err != nil {
		s.g.log.Error("gateway: undecodable message from the router", "err", err)
		return nil
	}
	switch m.Type {
	case proto.CodeWelcome:
		s.id.Store(m.ID)
	case proto.CodeResult:
		s.result(m)
	case proto.CodeError:
		if m.ReqType == proto.CodeCall {
			s.result(m)
		} else {
			s.syncDone(m)
		}
	case proto.CodeSubscribed, proto.CodePublished, proto.CodeRegistered:
		s.syncDone(m)
	case proto.CodeUnsubscribed:
		if m.Request == 0 { // the router revoked a subscription
			s.revoked(m)
			return nil
		}
		s.syncDone(m)
	case proto.CodeUnregistered:
		if m.Request != 0 {
			s.syncDone(m)
		} else if s.onRevoke != nil { // the router revoked a registration
			_, reason := revocationOf(m)
			s.onRevoke(s, reason)
		}
	case proto.CodeEvent:
		s.event(m)
	case proto.CodeInvocation:
		if s.onInv != nil {
			s.onInv(s, m)
		}
	case proto.CodeInterrupt:
		if inv := s.invs[m.Request]; inv != nil {
			inv.interrupt()
		}
	case proto.CodeGoodbye:
		// The router ends the session (kill, reload, shutdown): answer,
		// after this Send returns (never re-enter the router from Send).
		reason, why := string(m.URI), ""
		if s.left {
			// The answer to our own GOODBYE (wamp.close.goodbye_and_out):
			// the gateway ended the session (Shutdown, an eviction), and
			// what waits on it is told system_shutdown, as before
			// 4235f38, which the errors tables may map. Its detail says
			// the gateway did: before, "router said GOODBYE
			// wamp.close.goodbye_and_out", as if the router had.
			reason, why = proto.CloseSystemShutdown, s.g.pool.leftWhy()
		} else {
			why = closedBy("GOODBYE", m)
		}
		s.end(reason, why)
		q := s.q
		q.post(func() {
			s.out.Reset()
			s.out.Type = proto.CodeGoodbye
			s.out.URI = append(s.out.URI[:0], proto.CloseGoodbyeAndOut...)
			q.shard.ReceiveMessage(s.rs, &s.out)
		})
	case proto.CodeAbort:
		s.end(string(m.URI), closedBy("ABORT", m))
	}
	return nil
}

// Close implements route.Peer: the session's transport ends. The router
// calls it on the shard's goroutine after the last message; the session is
// detached once this call has returned.
func (s *sess) Close() {
	s.end(proto.CloseSystemShutdown, "closed")
	// Read s.rs when the job runs: Open may close a session before it
	// returns it (router shutting down).
	q := s.q
	q.post(func() {
		if s.rs != nil {
			q.shard.Detach(s.rs)
		}
	})
}

// closedBy says why the router ended a session with m, a GOODBYE or an
// ABORT: its reason, and its message when it gives one (a reload's or a
// revocation's account of why the session's identity may no longer stay).
func closedBy(typ string, m *proto.Message) string {
	why := "router said " + typ + " " + string(m.URI)
	if msg := m.Opt.String(proto.KeyMessage); msg != "" {
		why += ": " + msg
	}
	return why
}

// end marks the session closed and fails whatever waits on it: its
// calls and streams with reason, the router's (its GOODBYE's or ABORT's
// URI: a kill's, a reload's), else wamp.close.system_shutdown, always as
// 503. Before, reason was always system_shutdown, the router's only in
// the detail, though README says a stream's last event names it. Owned by
// shard; idempotent.
func (s *sess) end(reason, why string) {
	if s.closed {
		return
	}
	s.closed = true
	s.dead.Store(true)
	if reason == "" {
		reason = proto.CloseSystemShutdown
	}
	lost := newProblem(http.StatusServiceUnavailable, reason, "the gateway's WAMP session closed: "+why)
	status := 0 // system_shutdown: the errors tables may map it
	if reason != proto.CloseSystemShutdown {
		status = lost.status // not the router's answer to the call: 503 whatever its URI
	}
	for req, c := range s.calls {
		delete(s.calls, req)
		c.finish(callReply{err: lost.uri, detail: lost.detail, status: status})
	}
	for id, e := range s.subs {
		delete(s.subs, id)
		for _, k := range e.sinks {
			k.gone(lost)
		}
	}
	for id, inv := range s.invs {
		delete(s.invs, id)
		inv.interrupt()
	}
	for req, r := range s.pending {
		delete(s.pending, req)
		r.done, r.typ, r.err, r.detail = true, proto.CodeError, proto.URIUnavailable, "the gateway's WAMP session closed: "+why
		close(r.wait)
	}
	if s.onClose != nil {
		s.onClose(s, why)
	}
	s.g.pool.dropped(s)
}

// leave ends the session from the gateway's side (idle eviction,
// shutdown): GOODBYE, which the router answers and then closes. Owned by
// shard.
func (s *sess) leave() {
	if s.closed || s.rs == nil {
		return
	}
	s.left = true
	s.out.Reset()
	s.out.Type = proto.CodeGoodbye
	s.out.URI = append(s.out.URI[:0], proto.CloseCloseRealm...)
	s.q.shard.ReceiveMessage(s.rs, &s.out)
}

// syncReply collects the router's answer to a request (SUBSCRIBE,
// UNSUBSCRIBE, PUBLISH with acknowledge, REGISTER, UNREGISTER): SUBSCRIBED
// and friends, or ERROR. The router answers most before ReceiveMessage
// returns. It answers a single registration on a mesh later, once its
// mesh-wide claim is settled: such a request is pending (wait is set), and
// runSync waits for its answer.
type syncReply struct {
	req    uint64
	done   bool
	typ    proto.Code
	id     uint64
	err    string // error URI, for ERROR
	detail string
	status int // as callReply's: the HTTP status of an error the gateway made up
	args   []byte
	kwargs []byte
	onOK   func(id uint64) // run inside Send on success (e.g. attach a stream before retained events)
	// wait, when set, is closed once a pending request is answered (or
	// the session closed). Set before request returns; never changed.
	wait chan struct{}
}

// maxPendingSync bounds a session's pending requests (syncReply): past it
// a request the router does not answer at once fails at once. (A callee's
// session makes one request at a time; route bounds a session's claims in
// flight anyway.)
const maxPendingSync = 256

// finish fills r from the router's answer m and wakes its waiter. Owned
// by shard.
func (r *syncReply) finish(m *proto.Message) {
	r.done, r.typ, r.id = true, m.Type, m.ID
	if m.Type == proto.CodeError {
		r.err = string(m.URI)
		r.args = cloneRaw(m.Args)
		r.kwargs = cloneRaw(m.Kwargs)
	} else if r.onOK != nil {
		r.onOK(m.ID)
	}
	if r.wait != nil {
		close(r.wait)
	}
}

func (s *sess) syncDone(m *proto.Message) {
	if r := s.sync; r != nil && r.req == m.Request && !r.done {
		r.finish(m)
		return
	}
	if r := s.pending[m.Request]; r != nil {
		delete(s.pending, m.Request)
		r.finish(m)
	}
}

// request runs build+ReceiveMessage on the shard and returns the router's
// answer. When the router answers later, with later the reply is pending
// and runSync waits for it; without, it fails now ("the router did not
// answer": a SUBSCRIBE, whose answer the router gives at once). Owned by
// shard.
func (s *sess) request(m *proto.Message, onOK func(uint64), later bool) *syncReply {
	return s.requestFrom(m, onOK, later, "", nil)
}

// requestFrom is request for a message of the client at address client
// (pubReq.client; "" for the session's principal), made with credential
// cred (pubReq.cred; nil for the session's).
func (s *sess) requestFrom(m *proto.Message, onOK func(uint64), later bool, client string, cred *route.Credential) *syncReply {
	r := &syncReply{req: m.Request, onOK: onOK}
	s.sync = r
	s.q.shard.ReceiveMessageWith(s.rs, m, client, cred)
	s.sync = nil
	if r.done {
		return r
	}
	if later && !s.closed && len(s.pending) < maxPendingSync {
		if s.pending == nil {
			s.pending = map[uint64]*syncReply{}
		}
		r.wait = make(chan struct{})
		s.pending[r.req] = r
		return r
	}
	r.done, r.typ, r.err = true, proto.CodeError, proto.URIUnavailable
	r.detail = "the router did not answer"
	if s.closed {
		r.detail = "the gateway's WAMP session closed"
	}
	return r
}

// forget gives up a pending request whose waiter stopped waiting. Owned
// by shard.
func (s *sess) forget(r *syncReply) {
	if s.pending[r.req] == r {
		delete(s.pending, r.req)
	}
}

func cloneRaw(r proto.Raw) []byte {
	if r.B == nil {
		return nil
	}
	return append([]byte(nil), r.B...)
}

// problemOf turns a failed synchronous reply into a problem.
func (g *Server) problemOf(r *syncReply, route map[string]int) *problem {
	return g.replyProblem(r.err, r.detail, r.status, markNone, r.args, r.kwargs, route)
}
