package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Calls, publications and subscriptions on an in-process session. The
// methods of sess here run on the shard's goroutine (jobs posted through
// shardQ); the Server methods run on HTTP goroutines.

// call is a CALL waiting for its answer. The shard fills its channels
// without blocking; the HTTP goroutine reads them.
type call struct {
	final chan callReply // capacity 1: the RESULT or ERROR
	prog  chan callReply // progressive RESULTs (nil when not asked for); bounded
	req   uint64         // owned by shard: the CALL's request id once sent
	s     *sess          // the session, and the CALL, for run
	cr    *callReq
}

// run implements job: it sends the CALL (a call posts itself, so that the
// request path allocates no closure).
func (c *call) run() { c.s.startCall(c, c.cr) }

// calls recycles call records (with their channels) whose final answer
// was received: nothing sends to them any more.
var calls = sync.Pool{New: func() any { return &call{final: make(chan callReply, 1)} }}

// callReply is a RESULT or an ERROR; args and kwargs are JSON owned by the
// reply.
type callReply struct {
	args, kwargs []byte
	err          string // the error URI of an ERROR
	detail       string // for errors the gateway makes up
}

func (c *call) finish(r callReply) {
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
}

// startCall sends the CALL. Owned by shard.
func (s *sess) startCall(c *call, cr *callReq) {
	if s.closed {
		c.finish(callReply{err: proto.URIUnavailable, detail: "the gateway's WAMP session closed"})
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
	m.URI = []byte(cr.uri)
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
	r := callReply{}
	n := len(m.Args.B) + len(m.Kwargs.B)
	if n > 0 {
		buf := make([]byte, 0, n)
		buf = append(buf, m.Args.B...)
		r.args = buf[:len(m.Args.B):len(m.Args.B)]
		buf = append(buf, m.Kwargs.B...)
		r.kwargs = buf[len(m.Args.B):]
		if m.Kwargs.B == nil {
			r.kwargs = nil
		}
		if m.Args.B == nil {
			r.args = nil
		}
	}
	if m.Type == proto.CodeError {
		r.err = string(m.URI)
	} else if m.Opt.Bool(proto.KeyProgress, false) {
		if c.prog == nil {
			return
		}
		select {
		case c.prog <- r:
		default:
			// The HTTP client reads the stream more slowly than the callee
			// produces: cut it rather than buffer without limit.
			req := m.Request
			delete(s.calls, req)
			c.finish(callReply{err: URISlowReader, detail: "the client did not read the progressive results fast enough"})
			s.g.metrics.sseCut.Add(1)
			s.q.post(func() { s.sendCancel(req) })
		}
		return
	}
	delete(s.calls, m.Request)
	c.finish(r)
}

// call runs one CALL for an HTTP request and waits for its answer. The
// router enforces the call's timeout (every bridge and route call has
// one) and answers wamp.error.timeout; a session that ends fails its
// calls. When ctx ends first (the client went away), the call is
// canceled.
func (g *Server) call(ctx context.Context, s *sess, cr *callReq) callReply {
	c := calls.Get().(*call)
	c.s, c.cr = s, cr
	if err := s.q.postJob(c); err != nil {
		return callReply{err: proto.URISystemShutdown, detail: "the router is not running"}
	}
	select {
	case r := <-c.final:
		c.s, c.cr, c.req = nil, nil, 0
		calls.Put(c)
		return r
	case <-ctx.Done():
		s.q.post(func() { s.cancelCall(c) }) // c is not recycled: the shard may still answer it
		return callReply{err: proto.URICanceled, detail: "the client went away"}
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
}

// publish runs a PUBLISH (always acknowledged, so that an authorization
// failure reaches the HTTP client) and returns the publication id. Owned
// by shard.
func (s *sess) publish(pr *pubReq) *syncReply {
	if s.closed {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the gateway's WAMP session closed"}
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
	return s.request(m, nil)
}

// runSync posts f to the session's shard and waits for its reply.
func (g *Server) runSync(s *sess, f func() *syncReply) *syncReply {
	ch := make(chan *syncReply, 1)
	if err := s.q.post(func() { ch <- f() }); err != nil {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URISystemShutdown, detail: "the router is not running"}
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		return r
	case <-t.C:
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the router did not answer in time"}
	}
}
