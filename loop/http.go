package loop

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gobwas/ws"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/proto/forwarded"
)

// The HTTP side of the shared port: a WebSocket upgrade at the WebSocket
// path, a health check, and a plain HTTP/1.1 answer-and-close for anything
// else. It is not an HTTP server: one request per connection, no bodies, no
// keep-alive. REST lives in package gateway, on net/http.
//
// handleHTTP pre-parses the request line and the few headers it needs to
// pick the answer, and leaves the WebSocket handshake itself (Host,
// Connection, Sec-WebSocket-Key/-Version/-Protocol, the accept hash) to
// gobwas/ws's Upgrader, run over exactly the header bytes.

const (
	defaultHTTPMaxHeader = 8 << 10
	defaultWSPath        = "/ws"
	defaultHealthPath    = "/healthz"
)

// supportedSubprotocols lists, for error bodies, the subprotocols
// proto.ParseSubprotocol accepts.
const supportedSubprotocols = proto.SubprotocolJSON + ", " + proto.SubprotocolMsgPack + ", " +
	proto.SubprotocolCBOR + ", " + proto.SubprotocolJSONBatched + ", " +
	proto.SubprotocolMsgPackBatched + ", " + proto.SubprotocolCBORBatched

// httpOptions configures handleHTTP. The zero value is usable. handleHTTP
// only reads it; the same value may serve many connections as long as no one
// writes it concurrently (overLimit is per call: set it on a copy).
type httpOptions struct {
	// wsPath is the path of the WebSocket endpoint; "" means "/ws".
	wsPath string
	// healthPath answers GET with 200 "ok"; "" means "/healthz".
	healthPath string
	// maxHeader bounds the request header, request line and final CRLF
	// included; <= 0 means 8 KiB. A longer header gets 431.
	maxHeader int
	// checkOrigin, when set, is called for a WebSocket upgrade with the
	// Origin header's value (nil when absent; the slice is valid only during
	// the call) and rejects the upgrade with 403 when it returns false. It
	// must not block.
	checkOrigin func(origin []byte) bool
	// overLimit, set by the caller when the listener's connection cap is
	// reached, answers every complete request with 503.
	overLimit bool
	// scanned, when set (tests: Options.headerScanned), counts the bytes
	// scanned for the header's end.
	scanned *atomic.Int64
}

func (o *httpOptions) path() string        { return cmp.Or(o.wsPath, defaultWSPath) }
func (o *httpOptions) healthzPath() string { return cmp.Or(o.healthPath, defaultHealthPath) }
func (o *httpOptions) headerLimit() int {
	if o.maxHeader <= 0 {
		return defaultHTTPMaxHeader
	}
	return o.maxHeader
}

// httpKind says what the caller does with an httpResult.
type httpKind uint8

const (
	// httpNeedMore: the header is incomplete; wait for more bytes.
	httpNeedMore httpKind = iota
	// httpUpgrade: write resp (the 101), Discard n, and read WebSocket
	// frames with serializer ser, batched or not. Bytes after the header
	// are already frames.
	httpUpgrade
	// httpRespond: write resp, then close the connection.
	httpRespond
	// httpDrop: the bytes are not an HTTP request (reason says so): close
	// the connection without an answer.
	httpDrop
)

// httpResult is what handleHTTP decided.
type httpResult struct {
	kind httpKind
	// status is the HTTP status of resp (101 for an upgrade).
	status int
	// resp is the whole response to write. It is freshly allocated and
	// owned by the caller.
	resp []byte
	// ser and batched are the negotiated subprotocol (httpUpgrade only).
	ser     proto.Serializer
	batched bool
	// hdr is the request header (httpUpgrade only), aliasing the input:
	// valid until the caller Discards n.
	hdr []byte
	// reason says why a request was refused (httpRespond with a status
	// other than 200), for the connection's close reason: one of the
	// errHTTP* sentinels, or the gobwas/ws handshake error.
	reason error
}

// Reasons for refusing a request.
var (
	errHTTPHeaderTooLarge = errors.New("loop: http: request header too large")
	errHTTPBadRequest     = errors.New("loop: http: malformed request")
	errHTTPNotFound       = errors.New("loop: http: unknown path")
	errHTTPMethod         = errors.New("loop: http: method not allowed")
	errHTTPNotUpgrade     = errors.New("loop: http: WebSocket path requested without an upgrade")
	errHTTPNoSubprotocol  = errors.New("loop: http: no WAMP subprotocol offered")
	errHTTPOrigin         = errors.New("loop: http: origin not allowed")
	errHTTPOverLimit      = errors.New("loop: http: maximum connection count reached")
	errHTTPNotHTTP        = errors.New("loop: http: not an HTTP request (no method)")
	errHTTPTLSHello       = errors.New("loop: http: a TLS ClientHello on a plaintext listener (a wss:// or rss:// client?)")
	errHTTPBadKey         = errors.New("loop: http: Sec-WebSocket-Key is not the base64 of 16 bytes, or appears twice")
	errHTTPBadHost        = errors.New("loop: http: Host missing from an HTTP/1.1 request, given twice, or not a host")
	errHTTPVersion        = errors.New("loop: http: an HTTP version other than 1.x")
	errHTTPBareLF         = errors.New("loop: http: a header line not ended by CRLF")
	errHTTPUpgradeBody    = errors.New("loop: http: a WebSocket upgrade request with a body")
	errHTTPUpgrade10      = errors.New("loop: http: a WebSocket upgrade in HTTP/1.0 (a proxy without HTTP/1.1 towards the router?)")
)

var crlfcrlf = []byte("\r\n\r\n")

// handleHTTP reads one HTTP request header from in and decides the answer.
//
// While the header ("\r\n\r\n") is incomplete it returns kind httpNeedMore
// and n == 0, unless o.maxHeader bytes are already buffered without a
// complete header: then it answers 431 (slowloris and oversized headers).
// It peeks at most o.maxHeader bytes, however many are buffered.
//
// Bytes that cannot start an HTTP request (methodPrefixOK) get kind
// httpDrop at once, whether or not the header is complete: a TLS
// ClientHello or binary garbage on the shared port is closed without
// waiting for the handshake timeout. So is a whole first line that is not
// a request line, or answered 400 when its method is in upper case
// (firstLineRefusal).
//
// Otherwise n is the length of the header, to Discard after writing
// res.resp (for 431, n is everything buffered). Bytes after the header are
// not touched: after an upgrade they are the first WebSocket frames.
//
// err is non-nil only when in itself fails; then close without answering.
// handleHTTP allocates (the response, and gobwas/ws's handshake state): it
// runs once per connection. A nil o means the zero httpOptions.
func handleHTTP(in inbound, o *httpOptions) (res httpResult, n int, err error) {
	return handleHTTPFrom(in, o, nil)
}

// handleHTTPFrom is handleHTTP for a header that may arrive in many reads:
// *from (when from is not nil) is how much of it earlier calls scanned
// without finding its end or a bare line end, and the scan resumes there
// (a few bytes before: a "\r\n\r\n" or a CR's LF may straddle two
// reads), then records how far it got. Scanned whole at each read, a
// header dribbled a byte a read cost the loop the square of its length
// (674 MB scanned for a 64 KiB header). Start *from at 0 for a new header.
func handleHTTPFrom(in inbound, o *httpOptions, from *int) (res httpResult, n int, err error) {
	if o == nil {
		o = &httpOptions{}
	}
	limit := o.headerLimit()
	buffered := in.InboundBuffered()
	if buffered == 0 {
		return res, 0, nil
	}
	b, err := in.Peek(min(buffered, limit))
	if err != nil {
		return res, 0, shortIsNil(err)
	}
	if !methodPrefixOK(b) {
		reason := errHTTPNotHTTP
		if b[0] == recordTypeHandshake { // the close log names the commonest misdirected client
			reason = errHTTPTLSHello
		}
		return httpResult{kind: httpDrop, reason: reason}, 0, nil
	}
	done := 0 // scanned already: no end within it, no bare line end but maybe a final CR
	if from != nil {
		done = min(*from, len(b))
	}
	if o.scanned != nil {
		o.scanned.Add(int64(len(b) - max(done-3, 0)))
	}
	i := bytes.Index(b[max(done-3, 0):], crlfcrlf)
	if i >= 0 {
		i += max(done-3, 0)
	}
	// A header whose lines end with a bare LF (or hold a bare CR) may never
	// show "\r\n\r\n": it is refused as soon as one is seen rather than
	// at the handshake timeout, and alike whether the header is complete
	// or not (the same answer however the bytes arrive; n is the header's
	// length, or all that is buffered while it is incomplete, as for 431).
	lines, n := b, buffered
	if i >= 0 {
		lines, n = b[:i+2], i+4 // the header's lines, each with its CRLF
	}
	// The first line is decided on alone as soon as it can be, not at the
	// handshake timeout (firstLineRefusal).
	if done < maxRequestLineScan {
		if res, ok := firstLineRefusal(b); ok && res.kind == httpDrop {
			return res, 0, nil
		} else if ok {
			return res, n, nil
		}
	}
	if bareLineEnd(lines, max(done-1, 0)) {
		return refuse(http.StatusBadRequest, errHTTPBareLF,
			"malformed HTTP request: every line must end with CRLF\n", false), n, nil
	}
	if i < 0 {
		if buffered >= limit {
			return refuse(http.StatusRequestHeaderFieldsTooLarge, errHTTPHeaderTooLarge,
				"request header too large\n", false), buffered, nil
		}
		if from != nil {
			*from = len(b)
		}
		return res, 0, nil
	}
	hdr := b[: i+4 : i+4]
	res = o.answer(hdr)
	if res.kind == httpUpgrade {
		res.hdr = hdr
	}
	return res, len(hdr), nil
}

// answer decides the response to a complete request header.
func (o *httpOptions) answer(hdr []byte) httpResult {
	req, ok := parseHTTPRequest(hdr)
	if !ok {
		return refuse(http.StatusBadRequest, errHTTPBadRequest, "malformed HTTP request\n", false)
	}
	head := string(req.method) == http.MethodHead
	// [RFC9110 §15.6.6]: 505 (HTTP Version Not Supported) ... the server
	// does not support, or refuses to support, the major version of HTTP
	// that was used in the request message. (An "HTTP/2.0" request line,
	// an h2 client's prior-knowledge preface included, was served as 1.1.)
	if req.major != '1' {
		return refuse(http.StatusHTTPVersionNotSupported, errHTTPVersion,
			"only HTTP/1.0 and HTTP/1.1 are served here\n", head)
	}
	// [RFC9112 §3.2]: A server MUST respond with a 400 (Bad Request)
	// status code to any HTTP/1.1 request message that lacks a Host header
	// field and to any request message that contains more than one Host
	// header field line or a Host header field with an invalid field
	// value. (gobwas/ws refuses a missing Host on an upgrade only.)
	if req.hosts > 1 || req.hosts == 0 && req.hostNeeded || req.badHost {
		return refuse(http.StatusBadRequest, errHTTPBadHost,
			"an HTTP/1.1 request needs exactly one Host header, a host[:port]\n", head)
	}
	// A path that does not exist is 404 whatever the method; 405 is for a
	// resource that exists but not with this method (RFC 9110 §15.5.6).
	path := requestPath(req.target)
	isGet := string(req.method) == http.MethodGet
	// [RFC9110 §9.1]: The method token is case-sensitive. A "get" is
	// another method (405), told so.
	allowed := "only GET and HEAD are allowed\n"
	if !isGet && !head && (equalFold(req.method, http.MethodGet) || equalFold(req.method, http.MethodHead)) {
		allowed = "only GET and HEAD are allowed (methods are case-sensitive: upper case)\n"
	}
	// The health check is answered past the connection cap too: a full
	// router is alive, and the connection closes after the answer. Before,
	// it got the cap's 503, and a liveness check at the listener's health
	// path restarted a router that was only full, ending its sessions.
	if o.overLimit && path != o.healthzPath() {
		return refuse(http.StatusServiceUnavailable, errHTTPOverLimit, "max connection count reached\n", head)
	}
	switch path {
	case o.healthzPath():
		// [RFC9110 §9.1]: All general-purpose servers MUST support the
		// methods GET and HEAD. Orchestrators' checks often send HEAD
		// (HAProxy's http-check, curl -I, wget --spider): before, they
		// got 405 and took a healthy router for down.
		if !isGet && !head {
			return httpResult{kind: httpRespond, status: http.StatusMethodNotAllowed, reason: errHTTPMethod,
				resp: appendHTTPResponseAllow(nil, http.StatusMethodNotAllowed, "GET, HEAD", allowed, false)}
		}
		return httpResult{kind: httpRespond, status: http.StatusOK,
			resp: appendHTTPResponse(nil, http.StatusOK, "ok", head)}
	case o.path():
		// HEAD is GET without the body (RFC 9110 §9.3.2): a HEAD cannot
		// upgrade, so it gets the 426 a GET without an upgrade gets.
		if !isGet && !head {
			return httpResult{kind: httpRespond, status: http.StatusMethodNotAllowed, reason: errHTTPMethod,
				resp: appendHTTPResponseAllow(nil, http.StatusMethodNotAllowed, "GET, HEAD", allowed, false)}
		}
		// [RFC6455 §4.1]: The method of the request MUST be GET, and the
		// HTTP version MUST be at least 1.1. gobwas/ws answered 505, which
		// reads as if HTTP/1.0 were not served at all; the usual sender is
		// a reverse proxy left at HTTP/1.0 (nginx's default), with or
		// without the Upgrade it was told to pass.
		if isGet && req.minor == '0' {
			return refuse(http.StatusBadRequest, errHTTPUpgrade10, upgrade10Text, false)
		}
		if head || !req.upgradeWS {
			return refuse(http.StatusUpgradeRequired, errHTTPNotUpgrade,
				"this is a WAMP WebSocket endpoint: upgrade to websocket with one of the subprotocols "+
					supportedSubprotocols+"\n", head)
		}
		return o.upgrade(hdr, &req)
	}
	return refuse(http.StatusNotFound, errHTTPNotFound, "not found\n", head)
}

// upgrade10Text is the body of the 400 to an HTTP/1.0 GET of the upgrade
// path.
const upgrade10Text = "a WebSocket upgrade needs HTTP/1.1 (RFC 6455 section 4.1) and this request is HTTP/1.0: " +
	"a reverse proxy in front of the router must forward it in HTTP/1.1 with its Upgrade and Connection headers " +
	"(nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\")\n"

// upgrade runs the WebSocket handshake over exactly the header bytes.
func (o *httpOptions) upgrade(hdr []byte, req *httpRequest) httpResult {
	if o.checkOrigin != nil && !o.checkOrigin(req.origin) {
		return refuse(http.StatusForbidden, errHTTPOrigin, "origin not allowed\n", false)
	}
	// [RFC6455 §4.2.1]: A |Sec-WebSocket-Key| header field with a
	// base64-encoded value that, when decoded, is 16 bytes in length.
	// [§11.3.1]: The |Sec-WebSocket-Key| header field MUST NOT appear more
	// than once in an HTTP request. (gobwas checks the length only.) A
	// missing key is left to gobwas, which answers 400 too.
	if req.keys > 1 || req.keys == 1 && !validWSKey(req.key) {
		return refuse(http.StatusBadRequest, errHTTPBadKey,
			"Sec-WebSocket-Key must appear once, the base64 encoding of 16 bytes\n", false)
	}
	// The bytes after the header are the first WebSocket frames: a body
	// announced by Content-Length or Transfer-Encoding would be read as
	// frames and end the connection with a protocol error (1002) after
	// the 101. Refuse it before the upgrade instead.
	if req.body {
		return refuse(http.StatusBadRequest, errHTTPUpgradeBody,
			"a WebSocket upgrade request carries no body (Content-Length or Transfer-Encoding)\n", false)
	}
	// gobwas reads through a 4 KiB bufio.Reader: given more than the header
	// it would swallow frames that arrived in the same segment.
	rw := handshakeRW{in: hdr}
	if req.lists {
		rw.in = wsListsJoined(hdr, req.connUpgrade)
	}
	u := ws.Upgrader{Protocol: isWAMPSubprotocol}
	hs, err := u.Upgrade(&rw)
	if err != nil {
		status := http.StatusBadRequest
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) && rej.StatusCode() != 0 {
			status = rej.StatusCode()
		}
		return refuse(status, err, err.Error()+"\n", false)
	}
	// [WAMP §Transports]: The WAMP protocol MUST BE negotiated during the
	// WebSocket opening handshake between Peers using the WebSocket
	// subprotocol negotiation mechanism.
	ser, batched, ok := proto.ParseSubprotocol(hs.Protocol)
	if !ok {
		return refuse(http.StatusBadRequest, errHTTPNoSubprotocol,
			"no supported WAMP subprotocol offered in Sec-WebSocket-Protocol; supported: "+
				supportedSubprotocols+"\n", false)
	}
	return httpResult{kind: httpUpgrade, status: http.StatusSwitchingProtocols,
		resp: rw.out, ser: ser, batched: batched}
}

// wsListsJoined returns a copy of hdr, a request header parsed by
// parseHTTPRequest that lists "websocket" in its Upgrade header, whose
// Upgrade and Connection lines are replaced by "Upgrade: websocket" and,
// when connUpgrade, "Connection: Upgrade". [RFC6455 §4.2.1]: An |Upgrade|
// header field containing the value "websocket" ...; a |Connection|
// header field that includes the token "Upgrade". Both are lists (RFC
// 9110 §7.8, §7.6.1), which a sender may split over several lines (§5.3):
// gobwas/ws refused "Upgrade: websocket, foo" and "Connection: keep-alive"
// followed by "Connection: Upgrade" (400). Once per such upgrade.
func wsListsJoined(hdr []byte, connUpgrade bool) []byte {
	out := make([]byte, 0, len(hdr)+len("Upgrade: websocket\r\nConnection: Upgrade\r\n"))
	line, rest := cutLine(hdr[:len(hdr)-2])
	out = append(append(out, line...), "\r\nUpgrade: websocket\r\n"...)
	if connUpgrade {
		out = append(out, "Connection: Upgrade\r\n"...)
	}
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		if name, _, _ := splitField(line); equalFold(name, "Upgrade") || equalFold(name, "Connection") {
			continue
		}
		out = append(append(out, line...), "\r\n"...)
	}
	return append(out, "\r\n"...)
}

// isWAMPSubprotocol is the Upgrader's Protocol hook: gobwas picks the first
// subprotocol the client offers for which it returns true.
func isWAMPSubprotocol(p []byte) bool {
	_, _, ok := proto.ParseSubprotocol(string(p))
	return ok
}

// handshakeRW feeds the header to gobwas and collects its response.
type handshakeRW struct {
	in  []byte
	out []byte
}

func (rw *handshakeRW) Read(p []byte) (int, error) {
	if len(rw.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, rw.in)
	rw.in = rw.in[n:]
	return n, nil
}

func (rw *handshakeRW) Write(p []byte) (int, error) {
	rw.out = append(rw.out, p...)
	return len(p), nil
}

// refuse builds an answer-and-close result.
func refuse(status int, reason error, body string, head bool) httpResult {
	return httpResult{kind: httpRespond, status: status, reason: reason,
		resp: appendHTTPResponse(nil, status, body, head)}
}

// appendHTTPResponse appends a complete HTTP/1.1 response with a plain-text
// body and Connection: close to dst. head omits the body (the answer to a
// HEAD request) but keeps its Content-Length.
func appendHTTPResponse(dst []byte, status int, body string, head bool) []byte {
	return appendHTTPResponseAllow(dst, status, "GET", body, head)
}

// appendHTTPResponseAllow is appendHTTPResponse whose 405 names the
// methods allow.
func appendHTTPResponseAllow(dst []byte, status int, allow, body string, head bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(status)...)
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	if status == http.StatusMethodNotAllowed {
		// [RFC9110 §15.5.6]: The origin server MUST generate an Allow
		// header field in a 405 (Method Not Allowed) response containing
		// a list of the target resource's currently supported methods.
		// The WebSocket path answers GET only, the health check GET
		// and HEAD.
		dst = append(dst, "\r\nAllow: "...)
		dst = append(dst, allow...)
	}
	if status == http.StatusUpgradeRequired {
		// [RFC9110 §15.5.22]: A server that sends a 426 (Upgrade Required)
		// response MUST send an Upgrade header field to indicate the
		// acceptable protocols. [§7.8]: A sender of Upgrade MUST also send
		// an "upgrade" connection option in the Connection header field.
		// [RFC6455 §4.2.2]: ... and a |Sec-WebSocket-Version| header field
		// indicating the version(s) the server is capable of understanding.
		dst = append(dst, "\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: close, Upgrade\r\n\r\n"...)
	} else {
		dst = append(dst, "\r\nConnection: close\r\n\r\n"...)
	}
	if head {
		return dst
	}
	return append(dst, body...)
}

// httpRequest is what answer needs from a request header. The slices alias
// the header.
type httpRequest struct {
	method    []byte
	target    []byte
	upgradeWS bool   // an Upgrade header lists the "websocket" token
	origin    []byte // the Origin header's value; nil when absent
	key       []byte // the (last) Sec-WebSocket-Key header's value
	keys      int    // how many Sec-WebSocket-Key headers there are
	// hosts is how many Host headers there are, badHost whether one is
	// not a host[:port], hostNeeded whether the version requires one
	// (HTTP/1.1 and later: RFC 9112 §3.2).
	hosts      int
	badHost    bool
	hostNeeded bool
	// major and minor are the version's digits; body whether a Content-Length
	// other than 0 or a Transfer-Encoding announces a body.
	major, minor byte
	body         bool
	// connUpgrade: a Connection header lists the "upgrade" token. lists:
	// an Upgrade header is not "websocket" alone, or a Connection header
	// does not list "upgrade": gobwas/ws, which looks at each line apart
	// and takes "websocket" alone, is then given the two joined
	// (wsListsJoined).
	connUpgrade, lists bool
}

// parseHTTPRequest checks the request line and the header lines of hdr,
// which ends with "\r\n\r\n", strictly enough that gobwas/ws, which splits
// at '\n', sees the same lines: every line must end with CRLF, and bare CR,
// bare LF, NUL, obsolete line folding and whitespace before a colon are
// rejected (RFC 9112 §2.2, §5.1, §5.2; RFC 9110 §5.5).
func parseHTTPRequest(hdr []byte) (req httpRequest, ok bool) {
	rest := hdr[:len(hdr)-2] // each line below keeps its own CRLF
	line, rest := cutLine(rest)
	req.method, req.target, line, ok = splitRequestLine(line)
	if !ok {
		return req, false
	}
	req.hostNeeded = string(line) != "HTTP/1.0" && string(line) != "HTTP/0.9"
	req.major, req.minor = line[5], line[7]
	seenOrigin := false
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		name, value, ok := splitField(line)
		if !ok {
			return req, false
		}
		switch {
		case equalFold(name, "Upgrade"):
			req.upgradeWS = req.upgradeWS || hasToken(value, "websocket")
			req.lists = req.lists || !equalFold(value, "websocket")
		case equalFold(name, "Connection"):
			up := hasToken(value, "upgrade")
			req.connUpgrade = req.connUpgrade || up
			req.lists = req.lists || !up
		case equalFold(name, "Origin"):
			// Two Origin headers would let a check see one and a later
			// reader another: refuse.
			if seenOrigin {
				return req, false
			}
			seenOrigin, req.origin = true, value
		case equalFold(name, "Sec-WebSocket-Key"):
			req.keys++
			req.key = value
		case equalFold(name, "Host"):
			req.hosts++
			req.badHost = req.badHost || !validHost(value)
		case equalFold(name, "Content-Length"):
			req.body = req.body || strings.TrimLeft(string(value), "0") != ""
		case equalFold(name, "Transfer-Encoding"):
			req.body = true
		}
	}
	return req, true
}

// firstLineRefusal decides on the first line of b (its first
// maxRequestLineScan bytes) alone: a whole line that is not a request line
// (method SP target SP HTTP/x.y), or one holding a bare CR or ended by a
// bare LF, cannot start a header, and was held until the handshake
// timeout when no "\r\n\r\n" followed (a memcached or Redis inline
// command, "get foo\r\n", from a client given this port). A method in
// upper case gets the 400 its header gets once complete; another (lower
// case: b passed methodPrefixOK) is not HTTP, closed unanswered. ok is
// false while the line may still be a request line, or is one. It looks
// only at the line, so the answer does not depend on how the header's
// bytes arrive.
func firstLineRefusal(b []byte) (res httpResult, ok bool) {
	line := b[:min(len(b), maxRequestLineScan)]
	end := bytes.IndexByte(line, '\n')
	if end >= 0 {
		line = line[:end+1]
	}
	bare := bareLineEnd(line, 0)
	if !bare && (end < 0 || requestLineOK(bytes.TrimSuffix(line, crlfcrlf[:2]))) {
		return res, false
	}
	// methodPrefixOK: method characters up to a space, which a line
	// holding a CR or an LF has.
	if sp := bytes.IndexByte(line, ' '); sp <= 0 || !upperMethod(line[:sp]) {
		return httpResult{kind: httpDrop, reason: errHTTPNotHTTP}, true
	}
	if bare {
		return refuse(http.StatusBadRequest, errHTTPBareLF,
			"malformed HTTP request: every line must end with CRLF\n", false), true
	}
	return refuse(http.StatusBadRequest, errHTTPBadRequest, "malformed HTTP request\n", false), true
}

// requestLineOK reports whether line, without its CRLF, is a request line.
func requestLineOK(line []byte) bool {
	_, _, _, ok := splitRequestLine(line)
	return ok
}

// splitRequestLine splits line, without its CRLF, into a request line's
// parts, ok when it is one.
func splitRequestLine(line []byte) (method, target, version []byte, ok bool) {
	// [RFC9112 §3]: request-line = method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return nil, nil, nil, false
	}
	method, line = line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 <= 0 {
		return nil, nil, nil, false
	}
	target, version = line[:sp2], line[sp2+1:]
	ok = isToken(method) && isVisible(target) && isHTTPVersion(version)
	return method, target, version, ok
}

// upperMethod reports whether m is a method as methodPrefixOK takes one,
// in upper case: not empty, of 'A' to 'Z', '-' and '_'.
func upperMethod(m []byte) bool {
	for _, c := range m {
		if (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return len(m) > 0
}

// bareLineEnd reports whether b, a header not yet complete, holds from
// its index from on an LF not preceded by CR or a CR followed by anything
// but LF (a CR at the end may still get its LF).
func bareLineEnd(b []byte, from int) bool {
	for i := from; i < len(b); i++ {
		switch c := b[i]; c {
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return true
			}
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return true
			}
		}
	}
	return false
}

// cutLine splits off the first CRLF-terminated line of b (without the
// CRLF). A line with a bare CR or LF is returned whole and then rejected by
// the caller's character checks.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, crlfcrlf[:2])
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+2:]
}

// splitField splits a header line into its name and its value without
// optional whitespace.
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	// [RFC9112 §5.1]: No whitespace is allowed between the field name and
	// colon. [RFC9112 §5.2]: obs-fold (a line starting with whitespace) is
	// rejected with 400; isToken refuses both.
	if colon <= 0 || !isToken(line[:colon]) {
		return nil, nil, false
	}
	value = forwarded.TrimOWS(line[colon+1:])
	for _, c := range value {
		// [RFC9110 §5.5]: Field values containing CR, LF, or NUL characters
		// are invalid and dangerous. Other controls but HTAB likewise.
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return line[:colon], value, true
}

// requestPath returns the path of a request target, without the query, and
// without scheme and authority for the absolute form (RFC 9112 §3.2).
func requestPath(target []byte) string {
	if len(target) > 0 && target[0] != '/' {
		if i := bytes.Index(target, []byte("://")); i > 0 {
			target = target[i+3:]
			if j := bytes.IndexByte(target, '/'); j >= 0 {
				target = target[j:]
			} else {
				target = []byte("/")
			}
		}
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return string(target)
}

// isHTTPVersion reports whether v is "HTTP/" DIGIT "." DIGIT.
func isHTTPVersion(v []byte) bool {
	return len(v) == 8 && string(v[:5]) == "HTTP/" &&
		isDigit(v[5]) && v[6] == '.' && isDigit(v[7])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isToken reports whether b is a non-empty RFC 9110 token (tchar+).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c):
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isVisible reports whether b is non-empty printable ASCII without spaces
// (a request target; non-ASCII octets must be percent-encoded).
func isVisible(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v contains tok,
// compared case-insensitively.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if equalFold(forwarded.TrimOWS(item), tok) {
			return true
		}
	}
	return false
}

// equalFold compares an ASCII header token with s, ignoring case.
func equalFold(b []byte, s string) bool {
	return len(b) == len(s) && bytes.EqualFold(b, []byte(s))
}

// maxMethodLen bounds the method of a request: the longest registered
// method, "UPDATEREDIRECTREF", has 17 characters.
const maxMethodLen = 20

// maxRequestLineScan bounds the bytes looked at for the end of the first
// line, to refuse one that is not a request line as soon as it is whole.
const maxRequestLineScan = 512

// methodPrefixOK reports whether b can be the start of an HTTP request: a
// method of letters, '-' or '_' (every registered method is such a token,
// in upper case; a lower-case one is answered 405 or 404, where it was
// closed unanswered as not HTTP) followed by a space. It decides as early
// as it can (the first byte of a TLS ClientHello, a CR, a digit), and once
// it is false it stays false however many bytes follow.
func methodPrefixOK(b []byte) bool {
	for i, c := range b {
		switch {
		case c == ' ':
			return i > 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '-', c == '_':
			if i >= maxMethodLen {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// validHost reports whether v can be a Host header's value, uri-host
// [":" port], by its characters (RFC 9110 §7.2, RFC 3986 §3.2.2: a
// reg-name is unreserved, pct-encoded and sub-delims characters, an
// IP-literal is in brackets). Empty is valid: the request target names no
// authority.
func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c):
		case strings.IndexByte("-._~%!$&'()*+,;=:[]", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validWSKey reports whether v is the standard base64 encoding of 16
// bytes: 22 characters of the alphabet and "==".
func validWSKey(v []byte) bool {
	if len(v) != 24 || v[22] != '=' || v[23] != '=' {
		return false
	}
	for _, c := range v[:22] {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	// The last character carries 2 bits of the 16th byte and 4 zero bits.
	return strings.IndexByte("AQgw", v[21]) >= 0
}
