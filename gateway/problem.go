package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/proto"
)

// Errors go to HTTP clients as RFC 9457 problem details
// (application/problem+json). Besides the standard members (type, title,
// status, detail) a problem carries the WAMP error URI ("error", the key
// Crossbar's HTTP bridge uses) and the error's args and kwargs:
//
//	{"type":"about:blank","title":"Not Found","status":404,
//	 "detail":"no callee registered for procedure \"com.example.add\"",
//	 "error":"wamp.error.no_such_procedure","args":["no callee ..."],"kwargs":{}}
//
// Errors the gateway raises itself (malformed JSON, an oversize body, a
// missing token) carry a WAMP URI too, so that clients handle one shape.

// Gateway error URIs for failures that have no WAMP equivalent.
const (
	URIMethodNotAllowed     = "edgewamp.error.method_not_allowed"
	URINotFound             = "edgewamp.error.not_found"
	URIUnsupportedMediaType = "edgewamp.error.unsupported_media_type"
	URINotAcceptable        = "edgewamp.error.not_acceptable"
	URIRequestTimeout       = "edgewamp.error.request_timeout"
	URITooManyRequests      = "edgewamp.error.too_many_requests"
	URIUpstream             = "edgewamp.error.upstream"
	URISlowReader           = "edgewamp.error.slow_reader"
)

// StatusClientClosed is the status recorded (in logs and metrics) for a
// request whose client went away before the answer: nginx's 499. Nothing
// is written to that client.
const StatusClientClosed = 499

// defaultStatus maps WAMP error URIs to HTTP statuses. URIs not listed
// (application errors) get Options.ApplicationErrorStatus (502 by default)
// unless the configuration maps them (Options.Errors, Route.Errors).
var defaultStatus = map[string]int{
	proto.URINotAuthorized:          http.StatusForbidden,
	proto.URIAuthorizationFailed:    http.StatusForbidden,
	proto.URIAuthorizationDenied:    http.StatusForbidden,
	proto.URIAuthorizationRequired:  http.StatusForbidden,
	proto.URINoSuchRole:             http.StatusForbidden,
	proto.URIAuthenticationFailed:   http.StatusUnauthorized,
	proto.URIAuthenticationDenied:   http.StatusUnauthorized,
	proto.URIAuthenticationRequired: http.StatusUnauthorized,
	proto.URINoSuchPrincipal:        http.StatusUnauthorized,
	proto.URINoSuchProcedure:        http.StatusNotFound,
	proto.URINoSuchRegistration:     http.StatusNotFound,
	proto.URINoSuchSubscription:     http.StatusNotFound,
	proto.URINoSuchRealm:            http.StatusNotFound,
	proto.URINoSuchSession:          http.StatusNotFound,
	proto.URIInvalidArgument:        http.StatusBadRequest,
	proto.URIInvalidURI:             http.StatusBadRequest,
	proto.URIOptionNotAllowed:       http.StatusBadRequest,
	proto.URIProtocolViolation:      http.StatusBadRequest,
	proto.URIPayloadSizeExceeded:    http.StatusBadGateway, // 413 for the router's refusal of the request (replyProblem)
	proto.URICanceled:               http.StatusConflict,
	proto.URIProcedureAlreadyExists: http.StatusConflict,
	proto.URITimeout:                http.StatusGatewayTimeout,
	proto.URIUnavailable:            http.StatusServiceUnavailable,
	proto.URINoAvailableCallee:      http.StatusServiceUnavailable,
	proto.URISystemShutdown:         http.StatusServiceUnavailable,
	proto.CloseSystemShutdown:       http.StatusServiceUnavailable,
	proto.CloseKilled:               http.StatusServiceUnavailable,
	proto.URINetworkFailure:         http.StatusBadGateway,
	proto.URIFeatureNotSupported:    http.StatusNotImplemented,
	URIMethodNotAllowed:             http.StatusMethodNotAllowed,
	URINotFound:                     http.StatusNotFound,
	URIUnsupportedMediaType:         http.StatusUnsupportedMediaType,
	URINotAcceptable:                http.StatusNotAcceptable,
	URIRequestTimeout:               http.StatusRequestTimeout,
	URITooManyRequests:              http.StatusTooManyRequests,
	URIUpstream:                     http.StatusBadGateway,

	// As procedure_already_exists, which it was until it had its own URI.
	proto.URIProcedureExistsInvocationPolicyConflict: http.StatusConflict,
}

// statusOf returns the HTTP status for a WAMP error URI: the route's
// mapping, the server's, the default table, else the application status.
func (g *Server) statusOf(uri string, route map[string]int) int {
	if s, ok := route[uri]; ok {
		return s
	}
	if s, ok := g.opts.Errors[uri]; ok {
		return s
	}
	if s, ok := defaultStatus[uri]; ok {
		return s
	}
	return g.opts.ApplicationErrorStatus
}

// mapped reports whether the configuration maps uri (route's errors, the
// server's), which then decides its status alone.
func (g *Server) mapped(uri string, route map[string]int) bool {
	_, r := route[uri]
	_, o := g.opts.Errors[uri]
	return r || o
}

// problem is an error on its way to an HTTP client.
type problem struct {
	status int
	uri    string
	detail string
	args   []byte // JSON array or nil
	kwargs []byte // JSON object or nil
	header map[string]string
	// gone: the client went away (status StatusClientClosed): nothing is
	// written. A status of 499 alone says nothing of the kind: the
	// configuration may map an error URI to it (errors take 400-599).
	gone bool
	// stale: a 401 for a genuine bearer token no longer good
	// (ErrBearerStale), not counted as a failed authentication.
	stale bool
}

func newProblem(status int, uri, detail string) *problem {
	return &problem{status: status, uri: uri, detail: detail}
}

// wampProblem builds the problem for a WAMP ERROR: its status from the
// tables, its detail from the first argument when that is a text string
// (errorDetail).
func (g *Server) wampProblem(uri string, args, kwargs []byte, errs map[string]int) *problem {
	p := &problem{status: g.statusOf(uri, errs), uri: uri, args: args, kwargs: kwargs}
	if p.status == http.StatusUnauthorized {
		// A callee's (or the router's) authentication error, or an
		// application error the configuration maps to 401: a 401
		// carries a challenge (RFC 9110 §15.5.2), as the gateway's own.
		p.header = map[string]string{"WWW-Authenticate": g.challenge("")}
	}
	p.detail = errorDetail(args)
	return p
}

// detailMost is the most of an ERROR's first argument a problem's detail
// repeats, in bytes: the args carry it whole.
const detailMost = 1 << 10

// errorDetail returns the detail of an ERROR whose Arguments are args (a
// JSON array): its first element when that is a text string, its first
// detailMost bytes (to a rune's start) and then "..." when longer; "" for
// anything else, a binary string ("\u0000" + base64) among them. Only
// that element is looked at, and of a long one only the part the detail
// takes is decoded: the whole list was decoded, one json.RawMessage per
// element, so that an ERROR of 400,000 small arguments (800 KB) cost
// 400,000 allocations and about 50 MB for its first string. The detail
// was the whole string: a 4 MiB first argument was sent twice, in the
// detail and in args, an 8.4 MB answer; and a binary one became a detail
// starting with NUL.
func errorDetail(args []byte) string {
	if len(args) <= 2 || args[0] != '[' {
		return ""
	}
	i := skipWS(args, 1)
	if i >= len(args) || args[i] != '"' {
		return ""
	}
	q := args[i:skipValue(args, i)]
	// An escape is at most 6 bytes for a byte of the text (\u0041), so
	// 6 × detailMost bytes of the JSON hold the detail's bytes.
	cut := len(q) > 6*detailMost+2
	if cut {
		q = stringHead(q, 6*detailMost)
	}
	var s string
	if json.Unmarshal(q, &s) != nil || strings.HasPrefix(s, "\x00") {
		return ""
	}
	if cut || len(s) > detailMost {
		n := min(len(s), detailMost)
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s
}

// stringHead returns a JSON string holding the start of q, a valid JSON
// string (quotes included) longer than n bytes: its first n bytes or a
// few more, so that no escape is cut (nor a surrogate pair's two), and a
// closing quote. It is a copy.
func stringHead(q []byte, n int) []byte {
	j := 1
	for j < n {
		switch {
		case q[j] != '\\':
			j++
		case q[j+1] != 'u':
			j += 2
		case j+12 <= len(q)-1 && (q[j+2] == 'd' || q[j+2] == 'D') && strings.IndexByte("89abAB", q[j+3]) >= 0 && q[j+6] == '\\':
			j += 12 // a high surrogate and its low one
		default:
			j += 6
		}
	}
	return append(q[:j:j], '"')
}

// body renders the problem document.
func (p *problem) body() []byte {
	b := make([]byte, 0, 160+len(p.detail)+len(p.args)+len(p.kwargs))
	b = append(b, `{"type":"about:blank","title":`...)
	b = strconv.AppendQuote(b, statusText(p.status))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(p.status), 10)
	if p.detail != "" {
		b = append(b, `,"detail":`...)
		b = appendJSONString(b, p.detail)
	}
	b = append(b, `,"error":`...)
	b = appendJSONString(b, p.uri)
	b = append(b, `,"args":`...)
	// args and kwargs may hold raw CR/LF (JSON whitespace, as an upstream
	// sent it): dropped, so that the document is one SSE data line.
	if len(p.args) > 0 {
		b = appendOneLine(b, p.args)
	} else {
		b = append(b, "[]"...)
	}
	b = append(b, `,"kwargs":`...)
	if len(p.kwargs) > 0 {
		b = appendOneLine(b, p.kwargs)
	} else {
		b = append(b, "{}"...)
	}
	return append(b, '}')
}

func statusText(code int) string {
	if code == StatusClientClosed {
		return "Client Closed Request"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Error"
}

// writeProblem sends p. Nothing is written for a client that went away
// (p.gone).
func writeProblem(w http.ResponseWriter, p *problem) {
	if p.gone {
		return
	}
	writeProblemDoc(w, p, p.body())
}

// writeProblemDoc sends p, doc its document (p.body()).
func writeProblemDoc(w http.ResponseWriter, p *problem, doc []byte) {
	h := w.Header()
	for k, v := range p.header {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(p.status)
	w.Write(doc)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD (encoding/json's rule), so the output is always valid JSON.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}
