package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The zero-config bridge endpoints:
//
//	POST /wamp/{realm}/call/{procedure}   {"args":[...],"kwargs":{...},"options":{"timeout":ms}}
//	     → 200 {"args":[...],"kwargs":{...}}; with Accept: text/event-stream,
//	       progressive results as SSE events "progress", then "result" (or "problem": an RFC 9457 document; not "error", which EventSource reserves for connection errors)
//	POST /wamp/{realm}/publish/{topic}    {"args":[...],"kwargs":{...},"options":{"acknowledge":true,...}}
//	     → 202, or 200 {"publication":id} when acknowledge is asked
//	GET  /wamp/{realm}/events/{topic}?match=prefix|wildcard[&retained=true]
//	     → text/event-stream, one event per WAMP EVENT
//
// Arguments travel as they are: the JSON the client sent is what a JSON
// callee receives (other serializers get it transcoded by the router), and
// a JSON result goes back byte for byte. Strings starting with "\u0000"
// are WAMP's JSON form of binary values ("\u0000" + base64).

// bridgeRealm checks that realm serves the bridge and authenticates the
// request for it, by one configuration (a reload's realms and keys, or
// the one before: never a mix).
func (g *Server) bridgeRealm(r *http.Request, realm string, body []byte) (*who, *problem) {
	ac := g.access.Load()
	if p := bridgeOff(ac.realm(realm), realm); p != nil {
		return nil, p
	}
	w, p := g.authenticate(ac, r, realm, &anyAuth, body, nil)
	if p != nil {
		return nil, p
	}
	if p := g.bridgeAccess(ac, w); p != nil {
		return nil, p
	}
	return w, nil
}

// bridgeUnread is, for a request waiting for 100 Continue, the refusal
// that its credential, or its lack of one, decides before its body is
// asked for (refuseUnread): the realm does not serve the bridge, or
// serves no request without credentials, or not its anonymous role, or
// the bearer token or API key is refused. A bearer token or API key,
// which does not cover the body, is checked here, once: its principal
// is returned, and the request is not authenticated again (bridgeRealm).
// Nil, nil when the body must be read to know, or is on its way.
func (g *Server) bridgeUnread(r *http.Request, realm string) (*who, *problem) {
	if !expectsContinue(r) {
		return nil, nil
	}
	ac := g.access.Load()
	if p := bridgeOff(ac.realm(realm), realm); p != nil {
		return nil, p
	}
	switch g.credentialOf(r) {
	case credBearer, credAPIKey:
		return g.bridgeRealm(r, realm, nil)
	case credSigned:
		return nil, nil // its signature covers the body
	}
	w, p := g.anonymous(ac, realm, nil)
	if p == nil {
		p = g.bridgeAccess(ac, w)
	}
	return nil, p
}

// bridgeAccess checks that w's realm serves the bridge to w under ac: a
// request's principal, and an open bridge stream's after each reload. It
// is the role the requests act as (w.id.authrole, what the router
// authorizes them as) that must be granted the bridge: a bearer token
// acting as a role without it was served when it listed another role
// that has it (who.hasRole looks at every role of the token).
func (g *Server) bridgeAccess(ac *access, w *who) *problem {
	ra := ac.realm(w.id.realm)
	if p := bridgeOff(ra, w.id.realm); p != nil {
		return p
	}
	if ra.Security && !slices.Contains(ra.BridgeRoles, w.id.authrole) {
		return newProblem(http.StatusForbidden, proto.URINotAuthorized, "role "+strconv.Quote(w.id.authrole)+" is not granted the HTTP bridge on realm "+strconv.Quote(w.id.realm))
	}
	return nil
}

// bridgeOff is the problem of a realm that does not serve the bridge (ra
// its entry, nil for a realm not configured), or nil.
func bridgeOff(ra *realmEntry, realm string) *problem {
	if ra == nil || !ra.Bridge {
		return newProblem(http.StatusNotFound, proto.URINoSuchRealm, "the HTTP bridge is not enabled for realm "+strconv.Quote(realm))
	}
	return nil
}

// anyAuth is the bridge endpoints' authentication: any credential, or none.
var anyAuth = Auth{Type: "any"}

// readGrowing reads the n bytes of body, growing its buffer as they
// arrive (from 16 KiB, doubling, never past n): a request head alone,
// which declares n and sends nothing, made the gateway hold n bytes
// (max_body, 1 MiB) for body_timeout, before authentication; 250 such
// connections, 37 KB sent in all, kept the collector running back to back
// under the process's memory limit. A body cut short is
// io.ErrUnexpectedEOF.
func readGrowing(body io.Reader, n int64) ([]byte, error) {
	b := make([]byte, 0, min(n, 16<<10))
	for int64(len(b)) < n {
		if len(b) == cap(b) {
			b = append(make([]byte, 0, min(2*int64(cap(b)), n)), b...)
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF && int64(len(b)) < n {
			return b, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return b, err
		}
		if err == io.EOF {
			break
		}
	}
	return b, nil
}

// readBody reads a JSON request body within limit bytes and
// Limits.BodyTimeout (bodyWatch). An empty body is nil.
func (g *Server) readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, *problem) {
	if r.ContentLength > int64(limit) {
		return nil, bodyTooLarge(limit)
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if p := repeated(r.Header, "Content-Type"); p != nil {
		return nil, p
	}
	if p := checkJSONType(r.Header.Get("Content-Type")); p != nil {
		return nil, p
	}
	if p := checkEncoding(r.Header); p != nil {
		return nil, p
	}
	// The read deadline is the body watch's (dispatch): BodyTimeout from
	// the request's start, cleared once the body is read to its end, kept
	// when it is not (the connection then closes after the answer).
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 { // within limit: checked above
		b, err = readGrowing(r.Body, n)
	} else {
		buf := bytes.NewBuffer(make([]byte, 0, 512))
		_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(limit)))
		b = buf.Bytes()
	}
	if err != nil {
		return nil, g.bodyProblem(err, limit)
	}
	return checkBody(b)
}

// bodyProblem is the answer to a body that could not be read within
// limit bytes (413) and Limits.BodyTimeout (408), or at all (400).
func (g *Server) bodyProblem(err error, limit int) *problem {
	var mb *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mb):
		return bodyTooLarge(limit)
	case errors.As(err, &ne) && ne.Timeout():
		p := newProblem(http.StatusRequestTimeout, URIRequestTimeout, "the body did not arrive within "+g.opts.Limits.BodyTimeout.String())
		p.header = map[string]string{"Connection": "close"}
		return p
	}
	return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "reading the body: "+err.Error())
}

func bodyTooLarge(limit int) *problem {
	return newProblem(http.StatusRequestEntityTooLarge, proto.URIPayloadSizeExceeded, "the body exceeds "+strconv.Itoa(limit)+" bytes")
}

// discardBody reads the body of a GET or HEAD request to its end and
// drops it, within limit bytes and Limits.BodyTimeout (bodyWatch), as
// readBody reads a POST's: a GET route uses none, but net/http watches
// for its client's going away (the request's context) only once the body
// is read to its end. Before, a GET route's call whose request carried a
// body (Content-Length: 1, one byte) was not canceled when its client
// closed the connection: the callee worked on, and the request held its
// in-flight slots, until the call's timeout (the route's, 30 s by
// default), for nobody. Nil when there is no body.
func (g *Server) discardBody(r *http.Request, limit int) *problem {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if r.ContentLength > int64(limit) {
		return bodyTooLarge(limit)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, int64(limit)+1))
	switch {
	case err != nil:
		return g.bodyProblem(err, limit)
	case n > int64(limit):
		return bodyTooLarge(limit)
	}
	return nil
}

// checkBody checks a body read whole: nil when empty, valid UTF-8.
func checkBody(b []byte) ([]byte, *problem) {
	if len(b) == 0 {
		return nil, nil
	}
	if !utf8.Valid(b) {
		return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "the body is not valid UTF-8")
	}
	return b, nil
}

// checkJSONType accepts application/json (and any +json type) in UTF-8,
// or no Content-Type at all.
func checkJSONType(ct string) *problem {
	switch ct {
	case "", "application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8":
		return nil // the usual ones, without parsing
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return newProblem(http.StatusUnsupportedMediaType, URIUnsupportedMediaType, "malformed Content-Type")
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return newProblem(http.StatusUnsupportedMediaType, URIUnsupportedMediaType, "the body must be application/json, not "+mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return newProblem(http.StatusUnsupportedMediaType, URIUnsupportedMediaType, "the body must be UTF-8, not "+cs)
	}
	return nil
}

// checkEncoding refuses a body sent with a Content-Encoding other than
// identity (RFC 9110 §15.5.16: 415): the gateway does not decode one, and
// read as JSON a gzip body was refused 400 "not valid UTF-8" or
// "malformed JSON", though the client sent it well formed.
func checkEncoding(h http.Header) *problem {
	for _, v := range h["Content-Encoding"] {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return newProblem(http.StatusUnsupportedMediaType, URIUnsupportedMediaType, "Content-Encoding "+strconv.Quote(c)+" is not supported: send the body uncompressed")
			}
		}
	}
	return nil
}

// payload is the args/kwargs part of a bridge body.
type payload struct {
	Args   json.RawMessage `json:"args"`
	Kwargs json.RawMessage `json:"kwargs"`
}

// check validates the payload: args a JSON array, kwargs an object (null
// or absent meaning none), nested at most proto.MaxDepth deep, WAMP values
// (wampJSON).
func (pl *payload) check() (args, kwargs []byte, p *problem) {
	args, kwargs = nullToNil(pl.Args), nullToNil(pl.Kwargs)
	if args != nil && args[0] != '[' {
		return nil, nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "args must be a JSON array")
	}
	if kwargs != nil && kwargs[0] != '{' {
		return nil, nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "kwargs must be a JSON object")
	}
	if jsonDepth(args) > proto.MaxDepth || jsonDepth(kwargs) > proto.MaxDepth {
		return nil, nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "args or kwargs nest deeper than "+strconv.Itoa(proto.MaxDepth)+" levels")
	}
	if !wampJSON(args, kwargs) {
		return nil, nil, problemNotWAMP()
	}
	return args, kwargs, nil
}

func nullToNil(r json.RawMessage) []byte {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || string(r) == "null" {
		return nil
	}
	return r
}

// jsonDepth returns the deepest nesting of arrays and objects in a
// well-formed JSON value.
func jsonDepth(b []byte) int {
	depth, deepest, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// decodeStrict decodes a JSON body into v, refusing unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) *problem {
	if body == nil {
		return nil
	}
	dec := gojson.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "malformed JSON body: data after the JSON value")
	}
	return nil
}

// callOptions is a bridge call's "options" member.
type callOptions struct {
	Timeout    *int64 `json:"timeout"`
	DiscloseMe bool   `json:"disclose_me"`
}

func (g *Server) bridgeCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST, OPTIONS")
		return
	}
	realm, proc := r.PathValue("realm"), r.PathValue("procedure")
	wantSSE := acceptsSSE(r)
	if !wantSSE && !acceptsJSON(r) {
		writeProblem(w, notAcceptable())
		return
	}
	early, p := g.bridgeUnread(r, realm)
	if p != nil {
		writeProblem(w, p) // before the body is asked for (Expect: 100-continue)
		return
	}
	body, p := g.readBody(w, r, g.opts.Limits.MaxBody)
	if p != nil {
		writeProblem(w, p)
		return
	}
	cr, who, p := g.callRequest(r, realm, proc, body, early)
	if p != nil {
		writeProblem(w, p)
		return
	}
	if wantSSE {
		g.streamCall(w, r, who, true, nil, &callReq{uri: cr.uri, args: cr.args, kwargs: cr.kwargs, timeout: cr.timeout, discloseMe: cr.discloseMe, wamp: cr.wamp}, nil)
		return
	}
	s, a, p := g.pool.acquire(who.id, r.RemoteAddr)
	if p != nil {
		writeProblem(w, p)
		return
	}
	res, c := g.call(r.Context(), s, &cr)
	g.answerCall(w, r, res, nil)
	// Released once the answer is written (or its write failed or timed
	// out, Limits.WriteTimeout): a client reading its result slowly holds
	// its slot meanwhile, so that one address's unread results are
	// bounded by MaxInFlightPerAddress, not by MaxConnections.
	g.pool.release(a)
	recycle(c)
}

// callRequest validates a bridge call's body (read whole, checked by
// checkBody) and authenticates the request: the call to make and who
// makes it; early, when not nil, is who bridgeUnread authenticated it
// as, before its body was read.
func (g *Server) callRequest(r *http.Request, realm, proc string, body []byte, early *who) (callReq, *who, *problem) {
	if p := sessionScopedProblem(proc); p != nil {
		return callReq{}, nil, p
	}
	bb, p := splitBody(body)
	if p != nil {
		return callReq{}, nil, p
	}
	cr := callReq{uri: proc, args: bb.args, kwargs: bb.kwargs}
	if p := cr.checkWAMP(); p != nil {
		return callReq{}, nil, p
	}
	var o callOptions
	if bb.options != nil {
		// Decoded into its own (escaping) value, so that a call without
		// options allocates none.
		// Names first: an unknown one is told as such, where the
		// decoder called the body malformed.
		if p := optionNames(bb.options, callOptionNames); p != nil {
			return callReq{}, nil, p
		}
		po := new(callOptions)
		if p := decodeStrict(bb.options, po); p != nil {
			p.detail = "options: " + p.detail
			return callReq{}, nil, p
		}
		o = *po
	}
	timeout := g.opts.CallTimeout
	if t := o.Timeout; t != nil {
		if *t < 0 {
			return callReq{}, nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options.timeout must not be negative")
		}
		if *t > 0 {
			// Compared in milliseconds: past 2^63 ns (about 106 days) the
			// product wrapped negative, and the call went without any
			// timeout (startCall sets none for a timeout under 1 ms).
			timeout = g.opts.MaxCallTimeout
			if *t < int64(g.opts.MaxCallTimeout/time.Millisecond) {
				timeout = time.Duration(*t) * time.Millisecond
			}
		}
	}
	who, p := early, (*problem)(nil)
	if who == nil {
		who, p = g.bridgeRealm(r, realm, body)
	} else {
		p = g.lapsed(who) // an Expect request's, authenticated before its body
	}
	if p != nil {
		return callReq{}, nil, p
	}
	cr.timeout, cr.discloseMe = timeout, o.DiscloseMe
	return cr, who, nil
}

// sessionScoped lists the meta procedures that act on the calling
// session itself: the testament procedures add an event the router
// publishes when the caller's session leaves, and discard the caller's.
// An HTTP request has no session of its own: its call is made on one of
// the gateway's pooled sessions, which every request of its principal
// shares (for a realm's anonymous principal, every HTTP client without
// credentials), so a testament would fire when the pool closes that
// session (session_idle, an eviction), announcing nothing, and another
// client could flush it. The other meta procedures name the session they
// act on (get, kill, remove_callee, remove_subscriber) or act on the
// realm; the kill procedures spare the calling session, as for any
// caller.
var sessionScoped = map[string]bool{
	"wamp.session.add_testament":    true,
	"wamp.session.flush_testaments": true,
}

// sessionScopedProblem refuses a call of a session-scoped meta procedure
// (bridge, routes), nil for any other procedure.
func sessionScopedProblem(proc string) *problem {
	if !sessionScoped[proc] {
		return nil
	}
	return newProblem(http.StatusForbidden, proto.URINotAuthorized, sessionScopedText(proc))
}

func sessionScopedText(proc string) string {
	return proc + " acts on the caller's own WAMP session; an HTTP request has none (its calls go through sessions the gateway shares among requests)"
}

// answerCall writes a call's outcome: 200 {"args","kwargs"} or a problem.
func (g *Server) answerCall(w http.ResponseWriter, r *http.Request, res callReply, errs map[string]int) {
	if res.err != "" {
		p := g.callProblem(res, errs)
		if res.err == proto.URICanceled && r.Context().Err() != nil {
			// Nothing is written: counted as the client's (499) by
			// statusWriter. Before, a status of 499 was the sign, and an
			// error the configuration maps to 499 (gateway.errors, a
			// route's errors) was answered 200 with an empty body.
			p.status, p.gone = StatusClientClosed, true
		}
		if p.gone {
			return // nothing is written
		}
		// Counted by the document's length, rendered once: before, by
		// its args, kwargs and detail, less than the document when the
		// detail's escapes grew it (up to ~1.8 times).
		doc := p.body()
		n := len(doc)
		if _, lane := w.(*laneRW); !lane && n > smallAnswer && n < writeChunk {
			// Counted while written, as writeResult counts a result.
			if g.countSmall(int64(n)) {
				writeProblemDoc(w, p, doc)
				g.uncountSmall(int64(n))
				return
			}
			n = writeChunk // past the total or the share: written as a large one, which can be cut
		}
		if n >= writeChunk {
			// An ERROR's payload is the callee's, as large as a result.
			h := w.Header()
			for k, v := range p.header {
				h.Set(k, v)
			}
			h["Cache-Control"] = noStore
			g.writeHeld(w, p.status, ctProblem, doc)
			return
		}
		writeProblemDoc(w, p, doc)
		return
	}
	doc := res.doc
	if doc == nil {
		doc, _, _ = appendResultDoc(nil, res.args, res.kwargs)
	}
	g.writeResult(w, http.StatusOK, doc)
}

// writeResult is writeJSON for a call's result. On net/http, one of
// writeChunk bytes or more counts in the SSE total (Limits.SSEBufferTotal)
// while its handler writes it, a piece of writeChunk at a time, and the
// total's reaper sees it as a client's queue (heldResult): past the
// bound, the writes blocked longest are ended. Before, such results were
// bounded by their number only (MaxInFlightPerAddress, MaxInFlight), each
// held until it was written: 128 unread 16 MiB results from one address,
// 2 GiB, and a client reading a piece per WriteTimeout kept one for 256 of
// them. The event loop's lane (laneRW) queues its answers to the loop's
// connection: they count in the loop's max_outbound_total, whose squeeze
// closes the connections holding the most.
//
// One under writeChunk but above net/http's buffers (smallAnswer), whose
// one Write a client that does not read blocks as well, counts in the
// total too while it is written (countSmall): atomic adds, no lock, no
// allocation (the call path's). One that would take the total, or such
// answers' share of it, past its bound is written as a large one is,
// where the reaper can cut it. Before, these were bounded by their number
// only (MaxInFlight: about 8,192 × 63 KiB gateway-wide).
func (g *Server) writeResult(w http.ResponseWriter, status int, doc []byte) {
	if n := int64(len(doc)); n < writeChunk {
		if _, lane := w.(*laneRW); lane || n <= smallAnswer {
			writeJSON(w, status, doc)
			return
		}
		if g.countSmall(n) {
			writeJSON(w, status, doc)
			g.uncountSmall(n)
			return
		}
	}
	g.writeHeld(w, status, ctJSON, doc)
}

// countSmall counts n, a plain answer's bytes under writeChunk, in the
// SSE total while its one Write runs, unseen by the reaper (no
// registration: no lock, no allocation), if both the total and such
// answers' share of it, a quarter, have room for it; false, counting
// nothing, if not (the answer is written as a large one, which can be
// cut). Before, the share was the whole total: clients that asked for
// such answers and read none filled it with bytes no reaper could end,
// and a stream whose client paused a moment was cut in their place.
func (g *Server) countSmall(n int64) bool {
	limit := g.opts.Limits.SSEBufferTotal
	if g.sse.small.Add(n) > limit/4 {
		g.sse.small.Add(-n)
		return false
	}
	if g.sse.bytes.Add(n) > limit {
		g.sse.bytes.Add(-n)
		g.sse.small.Add(-n)
		return false
	}
	return true
}

// uncountSmall undoes countSmall(n) once the answer is written.
func (g *Server) uncountSmall(n int64) {
	g.sse.bytes.Add(-n)
	g.sse.small.Add(-n)
}

// smallAnswer is the largest plain answer writeResult leaves out of the
// SSE total: net/http copies one this small into its buffers (its
// response's and its connection's), which the connection holds anyway,
// and the handler goes on.
const smallAnswer = 4 << 10

// writeHeld writes doc, of Content-Type ct, as writeResult does for a
// large one (a problem document carrying a callee's large ERROR too).
func (g *Server) writeHeld(w http.ResponseWriter, status int, ct []string, doc []byte) {
	if _, lane := w.(*laneRW); lane {
		h := w.Header()
		h["Content-Type"] = ct
		w.WriteHeader(status)
		w.Write(doc)
		return
	}
	hr := &heldResult{n: int64(len(doc)), gate: gateOf(w)}
	g.addQueue(hr)
	g.addSSEBytes(hr.n)
	h := w.Header()
	h["Content-Type"] = ct
	h["Content-Length"] = []string{strconv.Itoa(len(doc))}
	w.WriteHeader(status)
	wt := g.opts.Limits.WriteTimeout
	for len(doc) > 0 {
		k := min(len(doc), writeChunk)
		hr.since.Store(g.nanos())
		if wt > 0 {
			hr.gate.set(time.Now().Add(wt))
		}
		_, err := w.Write(doc[:k])
		hr.since.Store(0)
		if err != nil {
			break
		}
		doc = doc[k:]
	}
	g.removeQueue(hr)
	g.sse.bytes.Add(-hr.n)
	if hr.cut.Load() {
		g.metrics.sseCut.Add(1)
	}
}

// heldResult is a large call result its handler is writing (writeResult),
// as the SSE total's reaper sees it: held while a piece's write is
// blocked, never with entries waiting, so that a client that keeps up is
// not cut.
type heldResult struct {
	n     int64
	since atomic.Int64 // when the write of the current piece began (Server.nanos), 0 between pieces
	gate  *writeGate
	cut   atomic.Bool
}

func (hr *heldResult) held() (int64, int, int64) { return hr.n, 0, hr.since.Load() }

func (hr *heldResult) cutForTotal() bool {
	if !hr.cut.CompareAndSwap(false, true) {
		return false
	}
	hr.gate.end()
	return true
}

// callProblem turns a failed call's reply into a problem.
func (g *Server) callProblem(res callReply, errs map[string]int) *problem {
	return g.replyProblem(res.err, res.detail, res.status, res.mark, res.args, res.kwargs, errs)
}

// routerMark is what the router's own mark in an ERROR's Details says of
// it: a callee's ERROR cannot carry one (route.KeyForCallee,
// route.KeyForCaller).
type routerMark uint8

const (
	markNone      routerMark = iota
	markForCallee            // a CALL the router could not give the callee: the request's fault
	markForCaller            // an answer the router could not give the caller: the callee's fault
	markShutdown             // a call a router's stop ended (canceled): not a conflict
)

// markOf reads the router's mark of an ERROR of uri with Details d (for
// payload_size_exceeded and invalid_argument only: one decode of the
// Details, on errors only).
func markOf(uri string, d proto.Raw) routerMark {
	key, mark := route.KeyForCallee, markForCallee
	switch uri {
	case proto.URIPayloadSizeExceeded:
	case proto.URIInvalidArgument:
		key, mark = route.KeyForCaller, markForCaller
	case proto.URICanceled:
		key, mark = route.KeyShutdown, markShutdown
	default:
		return markNone
	}
	v, _ := proto.DecodeValue(d)
	if m, _ := v.(map[string]any); m[key] == true {
		return mark
	}
	return markNone
}

// replyProblem is the problem of a failed reply: its ERROR's, with the
// gateway's detail when the ERROR has none, and the gateway's status for
// an error it made up itself (status, which no errors table maps).
// mark is the router's mark in the ERROR's Details.
func (g *Server) replyProblem(uri, detail string, status int, mark routerMark, args, kwargs []byte, errs map[string]int) *problem {
	p := g.wampProblem(uri, args, kwargs, errs)
	if p.detail == "" {
		p.detail = detail
	}
	switch {
	case uri == proto.URIPayloadSizeExceeded && mark == markForCallee && !g.mapped(uri, errs):
		// The request, as the callee would have got it, is too large:
		// the client's doing (413). The callee's own error, or its
		// answer too large for the gateway, is the upstream's (502).
		// Told by the router's mark, not by the text: before, a callee
		// whose ERROR copied the router's wording got 413.
		p.status = http.StatusRequestEntityTooLarge
	case uri == proto.URIInvalidArgument && mark == markForCaller:
		// The callee's result has no JSON form (a NaN, an infinity, a
		// non-string map key, a text string starting with NUL from a
		// MsgPack or CBOR callee): the router
		// refused it for the gateway's JSON session. The callee's doing,
		// not the HTTP client's: 502, naming it. Told by the router's
		// mark: before, by the text, so a callee's own invalid_argument
		// starting with the router's wording lost its URI and its 400.
		p.status, p.uri = http.StatusBadGateway, URIUpstream
		why, _ := strings.CutPrefix(p.detail, route.ConvertCallerPrefix)
		p.detail = "the callee's result cannot be given in JSON: " + why
		p.args, p.kwargs = nil, nil
	}
	if status != 0 {
		p.status = status
	}
	return p
}

// noStore is the Cache-Control value of answers that hold live or
// per-principal data (shared like ctJSON).
var noStore = []string{"no-store"}

// ctJSON is the Content-Type header's value, shared by every response
// (net/http copies header values, it never writes to them); ctProblem
// likewise for problem documents.
var (
	ctJSON    = []string{"application/json"}
	ctProblem = []string{"application/problem+json"}
)

// writeJSON answers status with a JSON document in one Write. Content-Length
// is set up front only for documents net/http would otherwise send chunked
// (it computes the length itself for smaller ones, without allocating).
func writeJSON(w http.ResponseWriter, status int, doc []byte) {
	h := w.Header()
	h["Content-Type"] = ctJSON
	if len(doc) >= chunkingSize {
		h["Content-Length"] = []string{strconv.Itoa(len(doc))}
	}
	w.WriteHeader(status)
	w.Write(doc)
}

// chunkingSize is net/http's bufferBeforeChunkingSize: a handler's output
// up to this size gets a computed Content-Length.
const chunkingSize = 2048

var (
	resultOpen  = []byte(`{"args":`)
	resultMid   = []byte(`,"kwargs":`)
	resultClose = []byte(`}`)
	emptyArgs   = []byte(`[]`)
	emptyKwargs = []byte(`{}`)
)

// acceptsJSON reports whether r's Accept admits a call's JSON answer: no
// Accept, or one giving application/json a weight above 0 (RFC 9110
// §12.5.1: the weight of the most specific of application/json,
// application/* and */* it names; case-insensitive). It does not
// allocate: the lane checks it on every call.
func acceptsJSON(r *http.Request) bool {
	js, _, blank := acceptWeights(r)
	return blank || js > 0
}

// acceptWeights returns the weights (in thousandths) r's Accept gives a
// call's two answers: JSON, that of the most specific range naming it
// (application/json, then application/*, then */*), and an event stream,
// that of text/event-stream named as such (*/* does not ask for a
// stream); 0 for one it does not name. blank: no media range at all. It
// does not allocate.
func acceptWeights(r *http.Request) (js, sse int, blank bool) {
	blank = true
	spec := 0 // of the range js came from: 3 application/json, 2 application/*, 1 */*
	for _, v := range r.Header["Accept"] {
		for v != "" {
			part, rest, _ := cutUnquoted(v, ',')
			v = rest
			mt, params, _ := cutUnquoted(part, ';')
			mt = strings.TrimSpace(mt)
			if mt == "" {
				continue
			}
			blank = false
			var sp int
			switch {
			case strings.EqualFold(mt, "text/event-stream"):
				sse = max(sse, qWeight(params))
				continue
			case strings.EqualFold(mt, "application/json"):
				sp = 3
			case strings.EqualFold(mt, "application/*"):
				sp = 2
			case mt == "*/*":
				sp = 1
			default:
				continue
			}
			if q := qWeight(params); sp > spec {
				spec, js = sp, q
			} else if sp == spec {
				js = max(js, q)
			}
		}
	}
	return js, sse, blank
}

// qWeight returns the weight a media range's parameters give it, in
// thousandths: 1000 without q (or with one that is no qvalue, RFC 9110
// §12.4.2), 0 for q=0 (not acceptable).
func qWeight(params string) int {
	for params != "" {
		p, rest, _ := cutUnquoted(params, ';')
		params = rest
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || (v[0] != '0' && v[0] != '1') || len(v) > 1 && v[1] != '.' {
			return 1000
		}
		// Digits past the third are read (0.0000 is 0) and weigh nothing.
		w := int(v[0]-'0') * 1000
		for i, unit := 2, 100; i < len(v); i, unit = i+1, unit/10 {
			if v[i] < '0' || v[i] > '9' {
				return 1000
			}
			w += int(v[i]-'0') * unit
		}
		return min(w, 1000)
	}
	return 1000
}

// cutUnquoted is strings.Cut at the first sep outside a quoted-string
// (RFC 9110 §5.6.4: within one, a backslash quotes the next byte), where
// a parameter's value may hold commas and semicolons that separate
// nothing. Before, Accept was cut at every one: a quoted
// ",text/event-stream" streamed a JSON-only client's call. It does not
// allocate, and reads s only up to the sep it cuts at: a part without
// '"' is cut as strings.Cut cuts it. (It looked for a '"' in all of s
// first, and the callers cut a header part by part: a 64 KiB Accept of
// "a,a,…" took about 100 ms to read, 0.8 ms with strings.Cut.)
func cutUnquoted(s string, sep byte) (before, after string, found bool) {
	i := strings.IndexByte(s, sep)
	if i < 0 {
		return s, "", false // quoted or not, nothing to cut at
	}
	if strings.IndexByte(s[:i], '"') < 0 {
		return s[:i], s[i+1:], true
	}
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// notAcceptable is the 406 of a call whose Accept admits neither JSON nor
// (where offered) an event stream.
func notAcceptable() *problem {
	return newProblem(http.StatusNotAcceptable, URINotAcceptable, "a call is answered in JSON (application/json), or as an event stream (text/event-stream): the request's Accept admits neither")
}

// ackNotAcceptable is the 406 of an acknowledged publication whose
// Accept admits no JSON: its answer, {"publication":id}, is JSON (an
// unacknowledged one's 202 has no body, and is served whatever Accept
// says).
func ackNotAcceptable() *problem {
	return newProblem(http.StatusNotAcceptable, URINotAcceptable, `an acknowledged publication is answered in JSON (application/json), {"publication":id}: the request's Accept does not admit it`)
}

// acceptsSSE reports whether r's Accept asks for a call's answer as an
// event stream: it names text/event-stream with a weight above 0 and no
// lower than JSON's (acceptWeights; equal weights stream). It does not
// allocate: the lane checks it on every call. Before, only a weight of 0
// counted: "application/json, text/event-stream;q=0.1", which prefers
// JSON, was streamed.
func acceptsSSE(r *http.Request) bool {
	js, sse, _ := acceptWeights(r)
	return sse > 0 && sse >= js
}

// streamCall runs a call with progressive results, as SSE events:
// "progress" per progressive result, then "result" or "problem" (a problem
// document), for who (bridge: on the bridge endpoint; route: the route it
// was called on, or nil). It ends with a problem too when who's credential
// no longer authorizes it (grant.go), or its bearer token expires.
func (g *Server) streamCall(w http.ResponseWriter, r *http.Request, who *who, bridge bool, route *compiledRoute, cr *callReq, errs map[string]int) {
	status := http.StatusOK
	if route != nil {
		status = route.streamStatus()
	}
	if r.Method == http.MethodHead {
		// A streamed call's status and headers are known before it is
		// made (its outcome is its last event): a call route's HEAD is
		// answered without the call (RFC 9110 §9.3.2), nor a pooled
		// session or a stream slot. Before, the call was made and its
		// stream dropped, then (2178695) a session was still opened.
		headStream(w, status)
		return
	}
	if p := g.openStream(r); p != nil {
		writeProblem(w, p)
		return
	}
	defer g.closeStream(r)
	s, a, p := g.pool.acquire(who.id, r.RemoteAddr)
	if p != nil {
		writeProblem(w, p)
		return
	}
	defer g.pool.release(a)
	c := &call{final: make(chan callReply, 1), prog: make(chan callReply, g.opts.Limits.SSEQueue), more: make(chan struct{}, 1), progMax: int64(g.opts.Limits.SSEBuffer), s: s}
	// A credential taken away cancels the call at once (its callee stops
	// producing) and lets its queued results go, even while the handler
	// is blocked writing to its client.
	gr := newGrant(who, bridge, route, func() { s.q.post(func() { s.cancelCall(c); c.dropProgress(g) }) })
	defer g.unwatch(gr)
	if p := g.watch(gr); p != nil {
		writeProblem(w, p)
		return
	}
	if r.Context().Err() != nil {
		return // the client went away while the request waited for a session: no CALL (Server.call)
	}
	if err := s.q.post(func() { s.startCall(c, cr) }); err != nil {
		writeProblem(w, newProblem(503, proto.URISystemShutdown, "the router is not running"))
		return
	}
	if who.p != nil && !who.p.Expires.IsZero() {
		// The token's expiry ends the call as a withdrawal does, and as it
		// ends an event stream: canceled at once (even while the handler
		// is blocked writing), its problem the stream's last event. Before,
		// the call went on until it ended or timed out (MaxCallTimeout).
		exp := time.AfterFunc(time.Until(who.p.Expires), func() { gr.end(tokenExpired()) })
		defer exp.Stop()
	}
	// However the handler ends, the call stops being pending and what it
	// left in c.prog comes out of the SSE total: on the shard, after which
	// no progressive result is queued (or here, when the session's queue
	// is closed and none can be).
	g.addQueue(c)
	g.streamedCalls.Add(1)
	defer g.streamedCalls.Add(-1) // after its last event (endStreamedCalls)
	defer func() {
		g.removeQueue(c)
		if s.q.post(func() { s.cancelCall(c); c.dropProgress(g) }) != nil {
			c.dropProgress(g)
		}
	}()
	sw := newSSEWriter(g, w, g.opts.Limits.WriteTimeout, &c.writeSince)
	c.gate.Store(sw.gate)
	// The stream's status is held until its first event (a progressive
	// result, the outcome) or keepalive: a call failing before them is
	// answered as its plain request is (fail), with its problem's status.
	// Nothing more is held meanwhile than the stream's queue. Before, the
	// status (200, response.status) went at once, and a call failing at
	// once was a success's status carrying one problem event.
	started := false
	start := func() {
		if !started {
			started = true
			w.WriteHeader(status)
		}
	}
	t := time.NewTimer(cr.timeout + time.Second)
	defer t.Stop()
	ka := time.NewTicker(g.opts.Limits.SSEKeepalive)
	defer ka.Stop()
	// send writes one of the call's events, whose n bytes are counted in
	// the SSE total until the write returns (c.writing, for its reaper):
	// a client that does not read holds the event in a blocked write until
	// WriteTimeout, one progressive result larger than SSEBuffer or the
	// final result up to the router's message size. Before, a progressive
	// result left the total as its write began, and the final one was
	// never in it.
	send := func(name string, data []byte, n int64) error {
		start()
		c.writing.Store(n)
		err := sw.writeEvent(name, data) // c.writeSince (sw.since) while it is written
		c.writing.Store(0)
		g.sse.bytes.Add(-n)
		return err
	}
	// final writes the call's last event (its result or problem).
	final := func(name string, data []byte) {
		g.addSSEBytes(int64(len(data)))
		send(name, data, int64(len(data)))
	}
	// fail ends the call with p: its last event, or before the stream
	// started its plain answer.
	fail := func(p *problem) {
		if started {
			final("problem", p.body())
			return
		}
		w.Header().Del("X-Accel-Buffering")
		writeProblem(w, p)
	}
	sendProg := func(pr callReply) error {
		n := int64(len(pr.args) + len(pr.kwargs))
		c.progBytes.Add(-n)
		if c.cut.Load() {
			g.sse.bytes.Add(-n)
			return errCutForTotal // its queue goes when the handler returns
		}
		if gr.ended() != nil {
			g.sse.bytes.Add(-n)
			return errWithdrawn // nothing more of the call is written
		}
		return send("progress", resultDoc(pr), n)
	}
	for {
		if p := gr.ended(); p != nil {
			// The call is canceled already (the grant's stop).
			fail(p)
			return
		}
		select {
		case pr := <-c.prog:
			if err := sendProg(pr); err == errWithdrawn {
				continue // its problem, at the loop's top
			} else if err != nil {
				s.q.post(func() { s.cancelCall(c) })
				return
			}
		case <-c.more:
			// Results in over (prog's go first: next).
			pr, ok := c.next(g)
			if !ok {
				continue
			}
			if c.overN.Load() > 0 {
				select {
				case c.more <- struct{}{}:
				default:
				}
			}
			if err := sendProg(pr); err == errWithdrawn {
				continue
			} else if err != nil {
				s.q.post(func() { s.cancelCall(c) })
				return
			}
		case res := <-c.final:
			// Progressive results sent before the final one are in c.prog
			// and c.over.
			for drained := false; !drained; {
				pr, ok := c.next(g)
				if !ok {
					break
				}
				if err := sendProg(pr); err == errCutForTotal || err == errWithdrawn {
					drained = true // cut: res is its problem; withdrawn: the grant's, below
				} else if err != nil {
					return
				}
			}
			if gr.ended() != nil {
				continue // its problem, at the loop's top, not the call's outcome
			}
			if res.err != "" {
				if !started {
					w.Header().Del("X-Accel-Buffering")
					g.answerCall(w, r, res, errs) // as the plain request's (its large ERROR too)
					return
				}
				final("problem", g.callProblem(res, errs).body())
				return
			}
			if route != nil {
				// The route's response mapping, as its plain answer's.
				out, p := route.result(res)
				if p != nil {
					fail(p)
				} else {
					final("result", out)
				}
				return
			}
			final("result", resultDoc(res))
			return
		case <-ka.C:
			start()
			if sw.write([]byte(": keepalive\n\n")) != nil {
				s.q.post(func() { s.cancelCall(c) })
				return
			}
		case <-t.C:
			s.q.post(func() { s.cancelCall(c) })
			fail(newProblem(http.StatusGatewayTimeout, proto.URITimeout, "the call timed out"))
			return
		case <-gr.done:
			// Its problem, at the loop's top.
		case <-r.Context().Done():
			s.q.post(func() { s.cancelCall(c) })
			return
		case <-g.drainEnd:
			// A stop's drain lets a streamed call run on, as a plain
			// request in progress (and a WAMP caller's progressive call,
			// which the router's drain waits for): before, its start
			// canceled the call at once. Its deadline ends it.
			s.q.post(func() { s.cancelCall(c) })
			fail(newProblem(http.StatusServiceUnavailable, proto.URISystemShutdown, "the gateway is shutting down: the call was still in progress at the drain's deadline"))
			return
		}
	}
}

// resultDoc renders {"args":[...],"kwargs":{...}} on one line.
func resultDoc(res callReply) []byte {
	b := make([]byte, 0, 24+len(res.args)+len(res.kwargs))
	b = append(b, '{')
	b = appendPayload(b, res.args, res.kwargs)
	return append(b, '}')
}

// publishOptions is a bridge publication's "options" member. The lists
// stay the JSON they were sent as (checked by jsonList): decoded into Go
// slices, a list of empty strings cost about 20 times its bytes.
type publishOptions struct {
	Acknowledge      bool            `json:"acknowledge"`
	Retain           bool            `json:"retain"`
	DiscloseMe       bool            `json:"disclose_me"`
	Exclude          json.RawMessage `json:"exclude"`
	Eligible         json.RawMessage `json:"eligible"`
	ExcludeAuthID    json.RawMessage `json:"exclude_authid"`
	EligibleAuthID   json.RawMessage `json:"eligible_authid"`
	ExcludeAuthRole  json.RawMessage `json:"exclude_authrole"`
	EligibleAuthRole json.RawMessage `json:"eligible_authrole"`
}

// lists checks the options' lists and sets them on pr as their JSON.
func (o *publishOptions) lists(pr *pubReq) *problem {
	for _, l := range []struct {
		name string
		raw  json.RawMessage
		ids  bool
		to   *[]byte
	}{{"exclude", o.Exclude, true, &pr.exclude}, {"eligible", o.Eligible, true, &pr.eligible},
		{"exclude_authid", o.ExcludeAuthID, false, &pr.excludeAuthID}, {"eligible_authid", o.EligibleAuthID, false, &pr.eligibleAuthID},
		{"exclude_authrole", o.ExcludeAuthRole, false, &pr.excludeAuthRole}, {"eligible_authrole", o.EligibleAuthRole, false, &pr.eligibleAuthRole}} {
		b, ok := jsonList(l.raw, l.ids)
		if !ok {
			what := "a list of strings"
			if l.ids {
				what = "a list of session ids (integers in [0, 2^53])"
			}
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: "+l.name+" must be "+what)
		}
		*l.to = b
	}
	return nil
}

// jsonList checks raw, a valid JSON value, to be absent (nil, true) or a
// list of WAMP ids (integers in [0, 2^53], as a PUBLISH's lists take:
// proto.MaxID) or of strings, and returns it as it is, without
// allocating. null is not a list, as a WAMP PUBLISH's option must be one
// (ABORT protocol_violation there): before, it was taken as absent, and
// ids up to 2^64-1 were taken, an "eligible" past 2^53 publishing to no
// one with 202.
func jsonList(raw []byte, ids bool) ([]byte, bool) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return nil, true
	}
	if b[0] != '[' {
		return nil, false
	}
	ws := func(i int) int {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		return i
	}
	i := ws(1)
	if i < len(b) && b[i] == ']' {
		return b, true
	}
	for i < len(b) {
		j := i
		if ids {
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				j++
			}
			if n := j - i; n == 0 || n > 16 || n == 16 && string(b[i:j]) > "9007199254740992" {
				return nil, false
			}
		} else {
			if b[j] != '"' {
				return nil, false
			}
			for j++; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			j++
		}
		i = ws(j)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ']':
			return b, true
		case ',':
			i = ws(i + 1)
		default:
			return nil, false // 1.5, 1e3: not an id
		}
	}
	return nil, false
}

func (g *Server) bridgePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST, OPTIONS")
		return
	}
	realm, topic := r.PathValue("realm"), r.PathValue("topic")
	early, p := g.bridgeUnread(r, realm)
	if p != nil {
		writeProblem(w, p) // before the body is asked for (Expect: 100-continue)
		return
	}
	body, p := g.readBody(w, r, g.opts.Limits.MaxBody)
	if p != nil {
		writeProblem(w, p)
		return
	}
	bb, p := splitBody(body)
	if p != nil {
		writeProblem(w, p)
		return
	}
	pr := &pubReq{uri: topic, args: bb.args, kwargs: bb.kwargs}
	if p := pr.checkWAMP(); p != nil {
		writeProblem(w, p)
		return
	}
	// Authenticated before the options are decoded: their lists (up to
	// max_body) cost 14 to 17 times their bytes in Go values, which a
	// request without credentials to a realm that needs them, refused
	// 401 in the end, made the gateway spend first, at will.
	who, p := early, g.lapsed(early)
	if who == nil {
		who, p = g.bridgeRealm(r, realm, body)
	}
	if p != nil {
		writeProblem(w, p)
		return
	}
	if p := optionNames(bb.options, publishOptionNames); p != nil {
		writeProblem(w, p)
		return
	}
	var o publishOptions
	if p := decodeStrict(bb.options, &o); p != nil {
		p.detail = "options: " + p.detail
		writeProblem(w, p)
		return
	}
	if o.Acknowledge && !acceptsJSON(r) {
		writeProblem(w, ackNotAcceptable()) // before it is published
		return
	}
	pr.retain, pr.discloseMe = o.Retain, o.DiscloseMe
	if p := o.lists(pr); p != nil {
		writeProblem(w, p)
		return
	}
	g.doPublish(w, r, who, pr, o.Acknowledge, 0, nil)
}

// doPublish publishes and answers 202 (200 {"publication":id} with
// acknowledge, or status when set).
func (g *Server) doPublish(w http.ResponseWriter, r *http.Request, who *who, pr *pubReq, ack bool, status int, errs map[string]int) {
	id := who.id
	if id.unauthenticated() {
		pr.client = r.RemoteAddr
	}
	if pr.retain {
		pr.cred = g.bearerCredential(who)
	}
	s, a, p := g.pool.acquire(id, r.RemoteAddr)
	if p != nil {
		writeProblem(w, p)
		return
	}
	res := g.runSync(s, func() *syncReply { return s.publish(pr) })
	g.pool.release(a)
	if res.typ == proto.CodeError {
		writeProblem(w, g.problemOf(res, errs))
		return
	}
	g.recheckRetained(pr.cred)
	if !ack {
		if status == 0 {
			status = http.StatusAccepted
		}
		w.WriteHeader(status)
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(strconv.AppendUint([]byte(`{"publication":`), res.id, 10))
	w.Write([]byte("}"))
}

func (g *Server) bridgeEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD, OPTIONS")
		return
	}
	realm, topic := r.PathValue("realm"), r.PathValue("topic")
	q := r.URL.Query()
	if p := repeatedQuery(q, "match", "retained", "access_token"); p != nil {
		writeProblem(w, p)
		return
	}
	if p := repeated(r.Header, "Last-Event-Id"); p != nil {
		writeProblem(w, p)
		return
	}
	var match proto.Match
	switch q.Get("match") {
	case "", "exact":
	case "prefix":
		match = proto.MatchPrefix
	case "wildcard":
		match = proto.MatchWildcard
	default:
		writeProblem(w, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "match must be exact, prefix or wildcard"))
		return
	}
	// true or false, written so: before, any other value was taken for
	// false (?retained=True, =1 opened a stream without the replay the
	// client asked for, and it could not tell).
	var retained bool
	if v, given := q["retained"]; given {
		switch v[0] {
		case "true":
			retained = true
		case "false":
		default:
			writeProblem(w, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "retained must be true or false, not "+nameText([]byte(v[0]))))
			return
		}
	}
	if tok := q.Get("access_token"); tok != "" && r.Header.Get("Authorization") == "" {
		// Browsers' EventSource cannot set headers (RFC 6750 §2.3).
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	early, p := g.bridgeUnread(r, realm)
	if p != nil {
		writeProblem(w, p) // before the body is asked for (Expect: 100-continue)
		return
	}
	// A body (which a stream does not use) is read to its end first, as a
	// GET route's is (discardBody): net/http notices its client's going
	// away only then. Before, a stream whose GET carried one stayed open
	// after its client had closed the connection, until a write failed
	// (two keepalives, 30 s by default), with its slot, its subscription
	// and the events queued to it.
	if p := g.discardBody(r, g.opts.Limits.MaxBody); p != nil {
		writeProblem(w, p)
		return
	}
	who := early
	if who == nil {
		who, p = g.bridgeRealm(r, realm, nil)
	}
	if p != nil {
		writeProblem(w, p)
		return
	}
	if r.Method == http.MethodHead {
		// The GET's answer without its content (RFC 9110 §9.3.2), from
		// the gateway's own checks: nothing is made at the router (no
		// pooled session, subscription or retained event's gather; a
		// refusal of the router's own, its strict URIs or its
		// authorization, shows on the GET only), no stream slot taken.
		// Before, it was subscribed as the GET, then let go.
		if !proto.ValidPattern([]byte(topic), proto.URILoose, match) {
			writeProblem(w, newProblem(http.StatusBadRequest, proto.URIInvalidURI, "the topic is not a valid URI or pattern"))
			return
		}
		headStream(w, http.StatusOK)
		return
	}
	var lastID uint64
	if h := r.Header.Get("Last-Event-ID"); h != "" {
		lastID, _ = strconv.ParseUint(h, 10, 64)
		retained = true
	}
	g.serveEvents(w, r, who, topic, match, retained, lastID)
}

// serveEvents subscribes and streams events for who until the client
// leaves, it is cut, who's credential no longer authorizes it (its bearer
// token expired, revoked, or taken away by a reload: grant.go), the
// router takes its subscription away, or the gateway drains.
func (g *Server) serveEvents(w http.ResponseWriter, r *http.Request, who *who, topic string, match proto.Match, retained bool, lastID uint64) {
	if p := g.openStream(r); p != nil {
		writeProblem(w, p)
		return
	}
	defer g.closeStream(r)
	var expires time.Time
	if who.p != nil {
		expires = who.p.Expires
	}
	s, ip, p := g.pool.acquireStream(who.id)
	if p != nil {
		writeProblem(w, p)
		return
	}
	defer g.pool.releaseStream(ip)
	st := newStream(g, lastID)
	defer st.close()
	gr := newGrant(who, true, nil, st.stop)
	defer g.unwatch(gr)
	if p := g.watch(gr); p != nil {
		writeProblem(w, p)
		return
	}
	var subID uint64
	client := r.RemoteAddr
	res := g.runSync(s, func() *syncReply {
		rep, sid := s.subscribe(st, topic, match, retained, client)
		subID = sid
		return rep
	})
	// Undone when the handler returns, also when runSync gave up waiting:
	// the SUBSCRIBE may still run after that, and this job runs after it
	// (subID is the shard's to read and write; 0 when nothing was made).
	defer s.q.post(func() { s.unsubscribe(st, subID) })
	if res.typ == proto.CodeError {
		writeProblem(w, g.problemOf(res, nil))
		return
	}
	sw := newSSEWriter(g, w, g.opts.Limits.WriteTimeout, &st.writeSince)
	sw.draining = g.draining
	st.gate.Store(sw.gate)
	w.WriteHeader(http.StatusOK)
	if sw.write([]byte(": subscribed\n\n")) != nil {
		return
	}
	ka := time.NewTicker(g.opts.Limits.SSEKeepalive)
	defer ka.Stop()
	// write writes f and what else is queued; false when the handler
	// ends (a cut for the total goes on to <-st.cut, its problem event).
	write := func(f *eventFrame) bool {
		err := st.writeQueued(sw, f)
		if err == nil || err == errCutForTotal {
			return true
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-g.draining:
				// The drain's deadline (endStreamWrites,
				// sseWriter.deadline): the stop ended it, not a slow
				// reader (edgewamp_gateway_sse_cut_total).
			default:
				st.cutSlow() // the client stopped reading
			}
		}
		return false
	}
	var expired <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-expired:
			sw.writeEvent("problem", tokenExpired().body())
			return
		case f := <-st.ch:
			if !write(f) {
				return
			}
		case <-st.more:
			if f := st.next(); f != nil && !write(f) {
				return
			}
		case <-st.cut:
			if p := st.endedBy(gr); p != nil {
				sw.writeEvent("problem", p.body())
			}
			return
		case <-ka.C:
			if sw.write([]byte(": keepalive\n\n")) != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-g.draining:
			// Said, as a stream the router ends is: before, the stream
			// ended with nothing, and its client could not tell a stop
			// from a cut connection. Within drainEventTimeout, not the
			// stream's write timeout (sseWriter.deadline): to a client
			// that does not read, the write held Drain, and the stop,
			// that long (10 s by default) where the stream used to end
			// at once.
			sw.writeEvent("problem", newProblem(http.StatusServiceUnavailable, proto.URISystemShutdown, "the gateway is shutting down").body())
			return
		}
	}
}

// drainEventTimeout bounds the write of an event stream's last event
// when the gateway drains.
const drainEventTimeout = time.Second

// tokenExpired is the last event of an SSE stream whose bearer token
// expired.
func tokenExpired() *problem {
	return newProblem(http.StatusUnauthorized, proto.URIAuthenticationFailed, "the bearer token expired; reconnect with a fresh one")
}

// streamLimit is how many SSE streams may be open: Limits.MaxStreams,
// and at most Limits.MaxConnections less a sixteenth of it (at least one
// connection) kept for short requests. Streams last: before, they could
// take every connection (MaxStreams defaults to MaxConnections), and
// routes, the OAuth2 endpoints and, on net/http, every request got 503.
func streamLimit(l *Limits) int64 {
	conns := l.MaxConnections - max(l.MaxConnections/16, 1)
	return int64(max(min(l.MaxStreams, conns), 1))
}

// openStream admits one more SSE stream within streamLimit and
// Limits.MaxStreamsPerClient.
func (g *Server) openStream(r *http.Request) *problem {
	lim := &g.opts.Limits
	if g.streams.Add(1) > streamLimit(lim) {
		g.streams.Add(-1)
		g.refused(refusedStreams)
		return tooBusy(503, "the gateway serves as many event streams as it may")
	}
	ip := clientIP(r)
	g.ipMu.Lock()
	n := g.perIP[ip]
	if n >= lim.MaxStreamsPerClient {
		g.ipMu.Unlock()
		g.streams.Add(-1)
		g.refused(refusedStreamsClient)
		return tooBusy(429, "too many event streams from this address")
	}
	g.perIP[ip] = n + 1
	g.ipMu.Unlock()
	return nil
}

func (g *Server) closeStream(r *http.Request) {
	g.streams.Add(-1)
	ip := clientIP(r)
	g.ipMu.Lock()
	if n := g.perIP[ip] - 1; n > 0 {
		g.perIP[ip] = n
	} else {
		delete(g.perIP, ip)
	}
	g.ipMu.Unlock()
}
