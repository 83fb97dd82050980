package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/proto"
)

// HTTP callees: procedures the gateway registers on behalf of HTTP
// upstreams. Each INVOCATION becomes
//
//	POST <url>  Content-Type: application/json
//	{"procedure":"com.example.weather","args":[...],"kwargs":{...},
//	 "details":{"caller":123,"caller_authid":"alice","caller_authrole":"user"}}
//
// (caller details only when the router discloses the caller). A 2xx
// response is the result: its JSON body is the single result argument
// (Callee.Result "body"), or {"args":[...],"kwargs":{...}} ("wamp"); a
// non-JSON body becomes one string argument, an empty one no argument. An
// error status is a WAMP error: the body's "error" URI (with its args and
// kwargs) when it is a problem document or JSON object carrying one,
// else by status (400/422 invalid_argument, 401/403 not_authorized,
// 408/504 timeout, 429/503 unavailable, others edgewamp.error.upstream
// with kwargs {status, body}). An upstream that does not answer within the
// timeout fails the call with wamp.error.timeout; INTERRUPT (the caller
// canceled, the router timed out) aborts the request. At most
// MaxConcurrent requests are in flight per callee; past it calls fail at
// once with wamp.error.unavailable rather than queue.
//
// The registration lives in its own session, reopened with backoff when
// the router closes it (reload, kill).

type calleeRunner struct {
	g     *Server
	cfg   Callee // defaults applied; static
	name  string // cfg.Name: metrics label and identity across reloads; static
	shard int
	sem   chan struct{}
	m     *calleeMetrics // shared with the runner that replaces it (same name)
	// inBytes are the bytes of the request bodies in flight (within
	// cfg.MaxInFlightBytes), counted from invoked until the upstream
	// request ends.
	inBytes atomic.Int64

	stopCh   chan struct{} // closed by retire and stop: the runner ends
	hardCh   chan struct{} // closed by stop (Shutdown): invocations in flight are canceled, not waited for
	goneCh   chan struct{} // closed once the registration is gone for good (unregistered, or run returned)
	stopOnce sync.Once
	hardOnce sync.Once
	goneOnce sync.Once
	started  bool // guarded by Server.runMu

	registered atomic.Bool // its registration is in place (edgewamp_gateway_callee_registered)
	standby    atomic.Bool // another session holds its single registration (edgewamp_gateway_callee_standby)

	// failLogAt: when the last line about a failed upstream request was
	// logged (nanos: Server.nanos; 0 none); failQuiet: the failures not
	// logged since (logFailure).
	failLogAt atomic.Int64
	failQuiet atomic.Int64
}

// invocation is an INVOCATION being served. Owned by shard, except cancel.
type invocation struct {
	cancel context.CancelFunc
}

func (inv *invocation) interrupt() { inv.cancel() }

type calleeMetrics struct {
	outcomes      sync.Map // outcome → *atomic.Uint64
	inflight      atomic.Int64
	inflightBytes atomic.Int64  // of the runners counting into these (cur and one replaced by a reload)
	revoked       atomic.Uint64 // registrations the router took away (revoke.go)
}

func (m *calleeMetrics) add(outcome string) {
	v, _ := m.outcomes.LoadOrStore(outcome, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func (m *calleeMetrics) collect(e *expo, name string) {
	m.outcomes.Range(func(k, v any) bool {
		constMetric(e, "edgewamp_gateway_callee_invocations_total", "Invocations of HTTP callees, by callee and outcome (ok, error, timeout, failure, refused, canceled).",
			counterType, float64(v.(*atomic.Uint64).Load()), "callee", name, "outcome", k.(string))
		return true
	})
	constMetric(e, "edgewamp_gateway_callee_in_flight", "Requests in flight to HTTP callees' upstreams.", gaugeType, float64(m.inflight.Load()), "callee", name)
	constMetric(e, "edgewamp_gateway_callee_in_flight_bytes", "Bytes of the requests in flight to HTTP callees' upstreams, what max_in_flight_bytes bounds.", gaugeType, float64(m.inflightBytes.Load()), "callee", name)
	constMetric(e, "edgewamp_gateway_callee_revoked_total", "HTTP callees' registrations the router removed (remove_callee, a reload's revocation); each stays unregistered until the next configuration reload.",
		counterType, float64(m.revoked.Load()), "callee", name)
}

// standbyRetry is how often a runner standing by (another session holds
// the single registration it needs) tries to register again.
const standbyRetry = time.Second

// standBy runs register (a REGISTER) until it is not refused with
// procedure_already_exists or
// procedure_exists_with_different_invocation_policy: while another
// session holds the registration (a client, or the same runner on another
// node of a mesh), or other sessions hold it shared with another
// invocation policy, it stands by, trying again every standbyRetry on the
// same session, with flag set; began runs once when it begins, with the
// refusal's error URI. It returns the last reply, errStopped when stop
// closed meanwhile (the caller leaves), and whether it stood by.
//
// Another policy is a configuration that disagrees with the callee's, but
// not one the runner can mend, nor one that must last: a reload that
// changes a callee's invoke reaches the nodes of a mesh one by one, and
// the procedure's other callees may be clients that go (a release of
// theirs on its way). The runner takes the procedure once they left, as
// it does a single one (before the error had its own URI it stood by so
// too; logged once, at WARN, and counted in the standby gauge).
func standBy(register func() *syncReply, stop, closed <-chan struct{}, flag *atomic.Bool, began func(errURI string)) (r *syncReply, stoodBy bool) {
	defer flag.Store(false)
	r = register()
	for r.typ == proto.CodeError && (r.err == proto.URIProcedureAlreadyExists || r.err == proto.URIProcedureExistsInvocationPolicyConflict) {
		if !stoodBy {
			stoodBy = true
			flag.Store(true)
			began(r.err)
		}
		t := time.NewTimer(standbyRetry)
		select {
		case <-stop:
			t.Stop()
			return errStopped, true
		case <-closed:
			t.Stop()
			r = &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the session closed while it stood by"}
		case <-t.C:
			r = register()
		}
	}
	return r, stoodBy
}

// checkCallees checks cs as New and Prepare do, and returns them with
// their defaults applied and their names given (the errors name
// callees[i].field).
func (g *Server) checkCallees(cs []Callee) ([]Callee, []error) {
	var errs []error
	out := make([]Callee, len(cs))
	for i, c := range cs {
		at := func(f ...any) []any { return append([]any{"callees", i}, f...) }
		if c.Realm == "" {
			errs = append(errs, fieldErr("a callee needs a realm", at("realm")...))
		}
		match, ok := parseMatchName(c.Match)
		if !ok {
			errs = append(errs, fieldErr("match must be exact, prefix or wildcard", at("match")...))
		}
		if !proto.ValidPattern([]byte(c.Procedure), proto.URILoose, match) {
			errs = append(errs, fieldErr(strconv.Quote(c.Procedure)+" is not a procedure URI for match "+match.String(), at("procedure")...))
		}
		switch c.Invoke {
		case "", "single", "roundrobin", "random", "first", "last":
		default:
			errs = append(errs, fieldErr("invoke must be single, roundrobin, random, first or last", at("invoke")...))
		}
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fieldErr("url must be an http(s) URL", at("url")...))
		}
		switch c.Result {
		case "":
			c.Result = "body"
		case "body", "wamp":
		default:
			errs = append(errs, fieldErr("result must be body or wamp", at("result")...))
		}
		if c.Timeout <= 0 {
			c.Timeout = g.opts.CallTimeout
		}
		if c.MaxConcurrent <= 0 {
			c.MaxConcurrent = 64
		}
		if c.MaxResponse <= 0 {
			c.MaxResponse = g.opts.Limits.MaxBody
		}
		if c.MaxResponse > MaxBodyMax {
			// Read whole (io.ReadAll), as a request's body, and no longer
			// answer than the largest WAMP message becomes a YIELD: before,
			// MaxBody's maximum bounded only its default.
			errs = append(errs, fieldErr(strconv.Itoa(c.MaxResponse)+" bytes is above the maximum, "+strconv.Itoa(MaxBodyMax)+" bytes (16MiB, the largest WAMP message): the gateway reads an upstream's answer whole", at("max_response")...))
		}
		if c.MaxInFlightBytes <= 0 {
			c.MaxInFlightBytes = DefaultCalleeInFlightBytes
		}
		if c.AuthID == "" {
			c.AuthID = "gateway"
		}
		errs = append(errs, checkHeaders(c.Headers, at)...)
		normalizeRunner(&c.Match, &c.Headers)
		out[i] = c
	}
	errs = append(errs, nameRunners("callee", len(out), func(i int) (*string, string) { return &out[i].Name, out[i].Procedure })...)
	return out, errs
}

// newCalleeRunner is a runner of c (checked) on shard, counting into m.
func (g *Server) newCalleeRunner(c Callee, shard int, m *calleeMetrics) *calleeRunner {
	return &calleeRunner{g: g, cfg: c, name: c.Name, shard: shard, sem: make(chan struct{}, c.MaxConcurrent), m: m,
		stopCh: make(chan struct{}), hardCh: make(chan struct{}), goneCh: make(chan struct{})}
}

// checkHeaders checks a callee's or webhook's headers (at gives a field's
// path) as net/http's client will: a name is an RFC 9110 token, a value
// holds no control character but HTAB. Before, one it refuses passed the
// check, and every request of the runner failed at the transport (a
// callee's every call wamp.error.network_failure, a webhook's every event
// dropped after its retries), with only a debug line saying why; a YAML
// block scalar (`|`) leaves such a trailing newline.
func checkHeaders(h map[string]string, at func(f ...any) []any) []error {
	var errs []error
	for _, k := range sortedKeys(h) {
		if !validHeaderName(k) {
			errs = append(errs, fieldErr(strconv.Quote(k)+" is not a header name (an RFC 9110 token)", at("headers", k)...))
			continue
		}
		if strings.IndexFunc(h[k], func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) >= 0 {
			errs = append(errs, fieldErr("the value of header "+k+" holds a control character (a newline?)", at("headers", k)...))
		}
		if strings.EqualFold(k, "Host") && !validHostValue(h[k]) {
			// It is the request's Host (post, attempt): net/http's
			// client sends one that is not a host[:port] empty, and
			// through a proxy fails every request.
			errs = append(errs, fieldErr(strconv.Quote(h[k])+" is not a host name or address with an optional port, as header Host must be", at("headers", k)...))
		}
	}
	return errs
}

// validHostValue reports whether v is a Host net/http's client sends as
// it is (golang.org/x/net/http/httpguts.ValidHostHeader's bytes; others
// than ASCII it converts to punycode): a host name or address and an
// optional port, without a space, path or user info.
func validHostValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// normalizeRunner writes a runner's match and headers one way, so that a
// reload that spells the same configuration otherwise ("" or exact, no
// headers or {}) keeps the runner instead of replacing it.
func normalizeRunner(match *string, headers *map[string]string) {
	if *match == "" {
		*match = "exact"
	}
	if len(*headers) == 0 {
		*headers = nil
	}
}

func parseMatchName(s string) (proto.Match, bool) {
	switch s {
	case "", "exact":
		return proto.MatchExact, true
	case "prefix":
		return proto.MatchPrefix, true
	case "wildcard":
		return proto.MatchWildcard, true
	}
	return 0, false
}

// start runs c once. Called with Server.runMu held.
func (c *calleeRunner) start() {
	if c.started {
		return
	}
	c.started = true
	c.g.bg.Add(1)
	go c.run()
}

// stop ends c for Shutdown: it leaves its session, which cancels the
// invocations in flight. It does not wait.
func (c *calleeRunner) stop() {
	c.hardOnce.Do(func() { close(c.hardCh) })
	c.retire()
}

// retire ends c for a reload that removed or replaced it (quit); wait
// for its registration to go with awaitGone. Called with Server.runMu
// held.
func (c *calleeRunner) retire() {
	c.stopOnce.Do(func() { close(c.stopCh) })
	if !c.started {
		c.markGone()
	}
}

// awaitGone waits until c's registration is gone, for at most d; it
// reports whether it went.
func (c *calleeRunner) awaitGone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.goneCh:
		return true
	case <-t.C:
		return false
	}
}

func (c *calleeRunner) markGone() { c.goneOnce.Do(func() { close(c.goneCh) }) }

// hard reports whether stop (Shutdown) was called.
func (c *calleeRunner) hard() bool {
	select {
	case <-c.hardCh:
		return true
	default:
		return false
	}
}

// quit ends the registration reg of s as c stops. Shutdown leaves the
// session at once, which cancels the invocations in flight (their
// upstream requests too), as before. A reload that removed or replaced c
// unregisters first: no call reaches c any more (a shared
// registration's other callees take them), and Apply, waiting for that,
// may register the replacement (invoke single: the procedure is free).
// The invocations in flight then finish, each within its timeout (the
// callee's, or the call's when shorter), and their results reach their
// callers: a reload is no reason to fail a call being served. Then c
// leaves. Shutdown meanwhile cuts the wait short: it closes the session
// (pool.closeAll), which cancels them.
func (c *calleeRunner) quit(s *sess, reg uint64, closed <-chan struct{}) {
	if c.hard() {
		s.q.post(s.leave)
		return
	}
	r := c.g.runSync(s, func() *syncReply { return s.unregister(reg) })
	if r.typ == proto.CodeError && !s.dead.Load() {
		c.g.log.Warn("gateway: a removed HTTP callee cannot unregister; leaving its session", "callee", c.name, "procedure", c.cfg.Procedure, "error", r.err, "detail", detailOf(r))
		c.g.runSync(s, func() *syncReply { s.leave(); return &syncReply{done: true} })
		c.markGone()
		return
	}
	c.markGone()
	if n := len(c.sem); n > 0 {
		c.g.log.Info("gateway: removed HTTP callee unregistered; waiting for its invocations in flight", "callee", c.name, "procedure", c.cfg.Procedure, "in_flight", n, "within", c.cfg.Timeout)
		c.drain(closed)
	}
	s.q.post(s.leave)
}

// drain waits until c has no invocation in flight, for at most its
// timeout (and a second for their answers to go out), or until the
// session closes or Shutdown.
func (c *calleeRunner) drain(closed <-chan struct{}) {
	deadline := time.NewTimer(c.cfg.Timeout + time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(c.sem) > 0 {
		select {
		case <-closed:
			return
		case <-c.hardCh:
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// run keeps the registration: it opens a session, registers, and waits
// for the session to end, then starts over after a backoff. When the
// router takes the registration away (revoke.go) it waits for the next
// configuration reload instead, unless another node of a mesh won the
// procedure.
func (c *calleeRunner) run() {
	defer c.g.bg.Done()
	defer c.markGone()
	backoff := 500 * time.Millisecond
	id := identity{realm: c.cfg.Realm, authid: c.cfg.AuthID, authrole: c.cfg.Role, method: "static"}
	for {
		select {
		case <-c.stopCh: // not reopened after a session closed as it stopped
			return
		default:
		}
		reload := c.g.nextReload() // before the attempt: a reload during it is not missed
		failed := ""               // the refusal's error URI
		closed := make(chan struct{})
		revoked := make(chan revocation, 1)
		s, p := c.g.pool.openPinned(id, c.shard, c.invoked, func(*sess, string) { close(closed) }, c.g.revokeNotice(revoked))
		if p == nil {
			match, _ := parseMatchName(c.cfg.Match)
			register := func() *syncReply {
				return c.g.runSyncStop(s, func() *syncReply { return s.register(c.cfg.Procedure, match, c.cfg.Invoke) }, c.stopCh)
			}
			r, stoodBy := standBy(register, c.stopCh, closed, &c.standby, func(errURI string) {
				if errURI == proto.URIProcedureExistsInvocationPolicyConflict {
					c.g.log.Warn("gateway: HTTP callee standing by: other sessions hold the procedure with another invocation policy than its invoke (clients, or this callee on another node of the mesh with another configuration); trying again every second",
						"callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "invoke", c.cfg.Invoke)
					return
				}
				c.g.log.Warn("gateway: HTTP callee standing by: another session holds the procedure's single registration (a client, or another node of the mesh); trying again every second",
					"callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm)
			})
			if r == errStopped { // stopped while it stood by or its REGISTER waited
				s.q.post(s.leave)
				return
			}
			if r.typ == proto.CodeError {
				s.q.post(s.leave)
				failed = r.err
				c.g.log.Error("gateway: HTTP callee cannot register", "callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "error", r.err, "detail", detailOf(r), "retry", retryWhen(r.err, backoff))
			} else {
				if stoodBy {
					c.g.log.Info("gateway: HTTP callee took over the procedure's registration after standing by", "callee", c.name, "procedure", c.cfg.Procedure)
				}
				c.g.log.Info("gateway: HTTP callee registered", "callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "url", redactedURL(c.cfg.URL))
				c.registered.Store(true)
				backoff = 500 * time.Millisecond
				select {
				case <-closed:
					c.registered.Store(false)
					c.g.log.Warn("gateway: HTTP callee's session closed; registering again", "callee", c.name, "procedure", c.cfg.Procedure)
				case rv := <-revoked:
					c.registered.Store(false)
					s.q.post(s.leave)
					if retriedRevocation(rv.reason) {
						c.g.log.Warn("gateway: HTTP callee's registration went to another node of the mesh; registering again", "callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "reason", rv.reason)
						break
					}
					if c.g.replacedByReload(c, c.stopCh) {
						c.g.log.Info("gateway: the reload that replaces an HTTP callee took its registration away first", "callee", c.name, "procedure", c.cfg.Procedure, "reason", rv.reason)
						return
					}
					c.m.revoked.Add(1)
					c.g.log.Warn("gateway: the router removed an HTTP callee's registration; it stays unregistered until the configuration is reloaded",
						"callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "reason", rv.reason)
					if !awaitReload(rv, c.stopCh) {
						return
					}
					c.g.log.Info("gateway: configuration reloaded; the removed HTTP callee registers again", "callee", c.name, "procedure", c.cfg.Procedure)
					continue
				case <-c.stopCh:
					c.registered.Store(false)
					c.quit(s, r.id, closed)
					return
				}
			}
		} else {
			failed = p.uri
			c.g.log.Error("gateway: HTTP callee cannot join", "callee", c.name, "procedure", c.cfg.Procedure, "realm", c.cfg.Realm, "error", p.uri, "detail", p.detail, "retry", retryWhen(p.uri, backoff))
		}
		if refusedUntilReload(failed) {
			if !awaitReload(revocation{reload: reload}, c.stopCh) {
				return
			}
			backoff = 500 * time.Millisecond
			continue
		}
		if !sleepOrStop(backoff, c.stopCh) {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func detailOf(r *syncReply) string {
	if r.detail != "" {
		return r.detail
	}
	if len(r.args) > 0 {
		return string(r.args)
	}
	return ""
}

// register sends REGISTER. Owned by shard.
func (s *sess) register(uri string, match proto.Match, invoke string) *syncReply {
	if s.closed {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "session closed"}
	}
	m := &s.out
	m.Reset()
	m.Type = proto.CodeRegister
	m.Request = s.nextReq()
	m.URI = []byte(uri)
	if match != proto.MatchExact {
		m.Opt.SetString(proto.KeyMatch, match.String())
	}
	if invoke != "" && invoke != "single" {
		m.Opt.SetString(proto.KeyInvoke, invoke)
	}
	return s.request(m, nil, true)
}

// unregister sends UNREGISTER for the registration id. Owned by shard.
func (s *sess) unregister(id uint64) *syncReply {
	if s.closed {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "session closed"}
	}
	m := &s.out
	m.Reset()
	m.Type = proto.CodeUnregister
	m.Request = s.nextReq()
	m.ID = id
	return s.request(m, nil, true)
}

// DefaultCalleeInFlightBytes is Callee.MaxInFlightBytes's default.
const DefaultCalleeInFlightBytes = 64 << 20

// invoked handles an INVOCATION. Owned by shard: it never blocks; the
// upstream request runs on its own goroutine.
func (c *calleeRunner) invoked(s *sess, m *proto.Message) {
	req := m.Request
	refuse := func(reason, why string) {
		c.m.add("refused")
		c.g.refused(reason)
		s.q.post(func() {
			s.answer(req, proto.URIUnavailable, msgArgs(why), nil)
		})
	}
	select {
	case c.sem <- struct{}{}:
	default:
		refuse(refusedCallee, "the HTTP upstream has too many requests in flight")
		return
	}
	// The body is held until the upstream answers: bounded in bytes too.
	// Before, only in number (MaxConcurrent): one caller's 64 calls of
	// 8 MiB to an upstream slow to answer held 538 MiB for its timeout.
	n := int64(128 + len(m.Args.B) + len(m.Kwargs.B))
	if q := c.inBytes.Add(n); q > int64(c.cfg.MaxInFlightBytes) && q != n {
		c.inBytes.Add(-n)
		<-c.sem
		refuse(refusedCalleeBytes, "the HTTP upstream has too many bytes in flight")
		return
	}
	c.m.inflightBytes.Add(n)
	timeout := c.cfg.Timeout
	if ms := m.Opt.Uint(proto.KeyTimeout); ms > 0 && time.Duration(ms)*time.Millisecond < timeout {
		timeout = time.Duration(ms) * time.Millisecond
	}
	proc := m.Opt.String(proto.KeyProcedure)
	if proc == "" {
		proc = c.cfg.Procedure
	}
	body := make([]byte, 0, n)
	body = append(body, `{"procedure":`...)
	body = appendJSONString(body, proc)
	body = append(body, ',')
	body = appendPayload(body, m.Args.B, m.Kwargs.B)
	body = append(body, `,"details":{`...)
	if caller := m.Opt.Uint(proto.KeyCaller); caller != 0 {
		body = append(body, `"caller":`...)
		body = strconv.AppendUint(body, caller, 10)
		body = append(body, `,"caller_authid":`...)
		body = appendJSONString(body, m.Opt.String(proto.KeyCallerAuthID))
		body = append(body, `,"caller_authrole":`...)
		body = appendJSONString(body, m.Opt.String(proto.KeyCallerAuthRole))
	}
	body = append(body, "}}"...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	inv := &invocation{cancel: cancel}
	if s.invs == nil {
		s.invs = map[uint64]*invocation{}
	}
	s.invs[req] = inv
	c.m.inflight.Add(1)
	go func() {
		defer func() { c.inBytes.Add(-n); c.m.inflightBytes.Add(-n); <-c.sem; c.m.inflight.Add(-1) }()
		args, kwargs, uri, outcome := c.post(ctx, proc, body)
		cancel()
		c.m.add(outcome)
		s.q.post(func() {
			if s.invs[req] != inv {
				return
			}
			delete(s.invs, req)
			s.answer(req, uri, args, kwargs)
		})
	}()
}

// answer sends YIELD (uri "") or ERROR for an INVOCATION. Owned by shard.
func (s *sess) answer(req uint64, uri string, args, kwargs []byte) {
	if s.closed {
		return
	}
	m := &s.out
	m.Reset()
	if uri == "" {
		m.Type = proto.CodeYield
	} else {
		m.Type = proto.CodeError
		m.ReqType = proto.CodeInvocation
		m.URI = []byte(uri)
	}
	m.Request = req
	if args != nil {
		m.Args = proto.Raw{Ser: proto.JSON, B: args}
	}
	if kwargs != nil {
		m.Kwargs = proto.Raw{Ser: proto.JSON, B: kwargs}
	}
	s.q.shard.ReceiveMessage(s.rs, m)
}

// post makes the upstream request and maps its answer.
func (c *calleeRunner) post(ctx context.Context, proc string, body []byte) (args, kwargs []byte, uri, outcome string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return msgArgs(err.Error()), nil, proto.URINetworkFailure, "failure"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Edgewamp-Procedure", proc)
	for k, v := range c.cfg.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v // net/http's client sends Request.Host and drops Header["Host"]
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.g.opts.HTTPClient.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return msgArgs("the HTTP upstream did not answer within " + c.cfg.Timeout.String()), nil, proto.URITimeout, "timeout"
		case errors.Is(err, context.Canceled):
			return msgArgs("the call was canceled"), nil, proto.URICanceled, "canceled"
		}
		// Not err's text: it holds the upstream's URL (its query may carry
		// a credential) and address, which are not the caller's to know.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.logFailure("gateway: HTTP callee's upstream failed; its call fails with wamp.error.network_failure", err)
		return msgArgs("the HTTP upstream failed"), nil, proto.URINetworkFailure, "failure"
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxResponse)+1))
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return msgArgs("the HTTP upstream did not answer within " + c.cfg.Timeout.String()), nil, proto.URITimeout, "timeout"
		case errors.Is(err, context.Canceled):
			// Canceled (INTERRUPT) while the answer was read, as before
			// its head: before, the caller got network_failure, the
			// metric a failure and the log the upstream's answer "cut
			// short".
			return msgArgs("the call was canceled"), nil, proto.URICanceled, "canceled"
		}
		// As for a failed request: the error names the upstream's
		// address, which is not the caller's to know.
		c.logFailure("gateway: HTTP callee's upstream answer cut short; its call fails with wamp.error.network_failure", err)
		return msgArgs("the HTTP upstream's answer was cut short"), nil, proto.URINetworkFailure, "failure"
	}
	if len(data) > c.cfg.MaxResponse {
		return msgArgs("the HTTP upstream's answer exceeds " + strconv.Itoa(c.cfg.MaxResponse) + " bytes"), nil, proto.URIPayloadSizeExceeded, "error"
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		args, kwargs, err := c.result(data, resp.Header.Get("Content-Type"))
		if err != nil {
			return msgArgs("the HTTP upstream's answer is not usable: " + err.Error()), nil, URIUpstream, "error"
		}
		return args, kwargs, "", "ok"
	}
	a, k, u := upstreamError(resp.StatusCode, data)
	return a, k, u, "error"
}

// logFailure logs an upstream request that failed with err (the caller
// is told only that it failed), at most one line per rejectLogEvery, which
// counts the failures not logged since. Before, the line was at debug
// level: at the default level, a callee whose upstream could not be
// reached (down, an untrusted certificate, a wrong port) failed every
// call with nothing in the log saying why. The URL is not named (its
// query may carry a credential): the callee's name and procedure are.
func (c *calleeRunner) logFailure(msg string, err error) {
	unlogged, ok := spacedLog(&c.failLogAt, &c.failQuiet, c.g.nanos())
	if !ok {
		return
	}
	c.g.log.Warn(msg, "callee", c.name, "procedure", c.cfg.Procedure, "error", err.Error(), "unlogged", unlogged)
}

// msgArgs returns the JSON args ["s"].
func msgArgs(s string) []byte { return append(appendJSONString([]byte{'['}, s), ']') }

// result maps a 2xx body to args and kwargs.
func (c *calleeRunner) result(data []byte, ct string) (args, kwargs []byte, err error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil, nil
	}
	if !utf8.Valid(data) {
		return nil, nil, errors.New("not UTF-8")
	}
	isJSON := json.Valid(data)
	if c.cfg.Result == "wamp" {
		if !isJSON {
			return nil, nil, errors.New(`not a JSON {"args","kwargs"} document`)
		}
		var pl payload
		if p := decodeStrict(data, &pl); p != nil {
			return nil, nil, errors.New(p.detail)
		}
		a, k, p := pl.check()
		if p != nil {
			return nil, nil, errors.New(p.detail)
		}
		return a, k, nil
	}
	if !isJSON {
		mt, _, _ := strings.Cut(ct, ";")
		if strings.Contains(mt, "json") {
			return nil, nil, errors.New("malformed JSON")
		}
		if data[0] == 0 {
			// In WAMP's JSON a string starting with NUL is a binary
			// value ("\u0000" + base64): the text would reach a JSON
			// caller as one, malformed as often as not, which its
			// client takes for a protocol violation.
			return nil, nil, errors.New("a text answer starting with NUL (in WAMP's JSON, a binary value)")
		}
		return msgArgs(string(data)), nil, nil
	}
	if jsonDepth(data) >= proto.MaxDepth {
		return nil, nil, errors.New("nested too deep")
	}
	out := make([]byte, 0, len(data)+2)
	out = append(out, '[')
	out = append(out, data...)
	out = append(out, ']')
	if !wampJSON(out, nil) {
		return nil, nil, errors.New("not a WAMP value: " + notWAMPValues)
	}
	return out, nil, nil
}

// readableText returns an upstream's text (an error status's body, a
// problem document's detail) for a WAMP string: a leading NUL replaced by
// U+FFFD, as invalid UTF-8 is, since in WAMP's JSON a string starting
// with NUL is a binary value, which a JSON caller's client would decode
// as one (and drop its session when the rest is not base64).
func readableText(s string) string {
	if strings.HasPrefix(s, "\x00") {
		return "\uFFFD" + s[1:]
	}
	return s
}

// upstreamError maps an error status and body to a WAMP error.
func upstreamError(status int, data []byte) (args, kwargs []byte, uri string) {
	var doc struct {
		Error  string          `json:"error"`
		Detail string          `json:"detail"`
		Args   json.RawMessage `json:"args"`
		Kwargs json.RawMessage `json:"kwargs"`
	}
	if json.Unmarshal(data, &doc) == nil && doc.Error != "" && proto.ValidURI([]byte(doc.Error), proto.URILoose) {
		pl := payload{Args: doc.Args, Kwargs: doc.Kwargs}
		if a, k, p := pl.check(); p == nil {
			if a == nil && doc.Detail != "" {
				a = msgArgs(readableText(doc.Detail))
			}
			return a, k, doc.Error
		}
	}
	switch status {
	case 400, 422:
		uri = proto.URIInvalidArgument
	case 401, 403:
		uri = proto.URINotAuthorized
	case 408, 504:
		uri = proto.URITimeout
	case 429, 503:
		uri = proto.URIUnavailable
	default:
		uri = URIUpstream
	}
	text := string(data)
	if len(text) > 1024 {
		text = text[:1024]
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = readableText(text)
	args = msgArgs(fmt.Sprintf("the HTTP upstream answered %d %s", status, http.StatusText(status)))
	kw := []byte(`{"status":`)
	kw = strconv.AppendInt(kw, int64(status), 10)
	kw = append(kw, `,"body":`...)
	kw = appendJSONString(kw, text)
	kw = append(kw, '}')
	return args, kw, uri
}
