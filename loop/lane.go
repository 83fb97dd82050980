package loop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The HTTP lane: plain HTTP/1.1 with keep-alive, served on the event loop
// for the gateway's hot endpoints, so that an HTTP request, the WAMP call it
// makes and its answer stay on one goroutine (no hand-off to net/http's
// goroutines and back, which costs two OS thread wake-ups per request).
//
// A listener with Transport HTTPLane reads request heads itself and parses
// them with net/http's own parser (http.ReadRequest). A request the Lane
// serves is answered through a LaneWriter, on the loop, now or later; any
// other request (another endpoint, a chunked body, Expect, an upgrade, a
// malformed or oversized head, HTTP/1.0, a version not 1.x: net/http
// answers HTTP/2.0 505) hands the whole connection, with
// every byte the loop buffered and did not use, to net/http (Lane.HandOff),
// which then owns it to its end. Only a connection with nothing pending
// is handed over: no request in progress and its output written.
//
// One request at a time per connection: a pipelined request waits in the
// buffer until the previous one is answered, so responses keep their order.
// What a peer can make the loop hold is bounded: no request is read while
// its answers back up past the high-water mark (the peer does not read
// them; scan resumes once they drain), and a connection whose unread input
// exceeds one whole request (MaxBody and the head limit) by laneReadAhead
// is closed.
//
// Deadlines (scan, once a second): a request head must arrive within
// LaneConfig.HeaderTimeout of its first byte (the connection closes, as
// net/http's do); a body still incomplete a second after its head sends
// the connection to net/http, which reads the rest within its body timeout
// (and answers 408 past it); a connection with no request in progress
// closes after IdleTimeout; so does one whose answers wait unread (reading
// blocked, or a hand-over waiting for them to drain) while the peer takes
// none of them for IdleTimeout, whatever it sends; a request in progress
// has none (the router bounds the call).

// HTTPLane is the Transport of a listener that serves LaneConfig.Lane.
const HTTPLane Transport = "http"

// Lane serves requests on an HTTPLane listener.
type Lane interface {
	// Serve is called on the connection's loop goroutine with a request
	// whose head and whole body (Content-Length) have arrived. r.Body is
	// http.NoBody; body is valid only during the call. Serve must not
	// block. It returns false to hand the connection to net/http, this
	// request included (then it has not used w); otherwise it answers
	// exactly once through w, during the call or later on the goroutine
	// of the loop's router shard (w.Shard).
	Serve(r *http.Request, body []byte, w LaneWriter) bool
	// HandOff receives a connection for net/http; its first reads return
	// the bytes the loop had buffered. Called on a loop goroutine; it must
	// not block.
	HandOff(c net.Conn)
}

// LaneConfig configures the HTTP lane of the engine's HTTPLane listeners.
type LaneConfig struct {
	Lane Lane
	// MaxBody: a request with a longer Content-Length goes to net/http
	// (which answers 413). Default 1 MiB.
	MaxBody int
	// MaxHeader: a request head (request line to its final CRLF) longer
	// than it, or than Options.MaxHandshake, goes to net/http (which
	// answers 431 past the server's bound). 0: Options.MaxHandshake only.
	MaxHeader int
	// HeaderTimeout bounds a request head's arrival from its first byte;
	// IdleTimeout closes a connection without a request. Defaults 10s and
	// 120s. (A slow body goes to net/http, which has its own timeout.)
	HeaderTimeout, IdleTimeout time.Duration
}

func (lc *LaneConfig) setDefaults() {
	if lc.MaxBody <= 0 {
		lc.MaxBody = 1 << 20
	}
	if lc.HeaderTimeout <= 0 {
		lc.HeaderTimeout = 10 * time.Second
	}
	if lc.IdleTimeout <= 0 {
		lc.IdleTimeout = 120 * time.Second
	}
}

// LaneWriter answers one request of an HTTPLane connection. Its methods
// must be called on the connection's loop goroutine (the goroutine of
// router shard Shard()).
type LaneWriter struct {
	cn  *conn
	gen uint32
}

// Shard returns the index of the router shard whose goroutine owns the
// connection.
func (w LaneWriter) Shard() int { return w.cn.ls.shard.Index() }

// Respond writes resp, a whole HTTP/1.1 response (status line, headers,
// body), and closes the connection after it when close is set. It does
// nothing when the request no longer waits for it (the connection closed).
func (w LaneWriter) Respond(resp []byte, close bool) {
	cn := w.cn
	l := cn.lane
	if cn.phase != phLane || !l.pending || l.gen != w.gen {
		return
	}
	l.pending = false
	l.onClose = nil
	cn.writeNow(resp)
	if f := l.written; f != nil {
		// An earlier answer still on its way out (a pipelined request
		// read below the high-water mark): this one's wait covers it.
		l.written = nil
		f()
	}
	l.written, l.onWritten = l.onWritten, nil
	if close {
		cn.die(CloseHTTP, nil)
		return
	}
	if !l.parsing && cn.in.InboundBuffered() > 0 && !l.resume {
		// A pipelined request waits. Respond may run inside the router
		// (the answer's delivery): parse it on a task of its own, never
		// re-entering the router from here.
		l.resume = true
		cn.ls.Execute(func() {
			l.resume = false
			cn.laneResume()
		})
	}
}

// laneResume parses, in a task of the loop, the requests that waited in
// the input while one was answered or while the peer did not read its
// answers, then brings the connection's count in max_inbound_total up to
// date (account): the requests served here leave gnet's buffer outside
// any read callback, where account runs otherwise. Before, their bytes
// stayed counted for as long as the keep-alive connection sent nothing
// more, up to its idle timeout: a peer that pipelined a large request
// behind one answered later, on many connections, filled the budget with
// bytes the router no longer held, against which the WAMP connections'
// large messages would have been refused (1009).
func (cn *conn) laneResume() {
	if cn.phase != phLane {
		return
	}
	cn.parse()
	cn.account()
}

// OnClose sets f to run, on the loop goroutine, if the connection closes
// before Respond. It must not block nor enter the router synchronously.
func (w LaneWriter) OnClose(f func()) {
	if l := w.cn.lane; l.pending && l.gen == w.gen {
		l.onClose = f
	}
}

// OnWritten sets f to run, on the loop goroutine, once the answer Respond
// writes has been handed whole to the kernel (nothing of the
// connection's output left in the loop's or gnet's buffers: after the
// flush that writes it, or at the scan, once a second, that finds it
// written), or when the connection closes, whichever comes first; it
// runs exactly once if set (OnWritten reports true) before Respond; it is
// not set when the request no longer waits for its answer (the
// connection closed). It must not block nor enter the router
// synchronously. The gateway holds a request's in-flight slot until then,
// so that a client that does not read its answers holds no more of them
// than its slots.
func (w LaneWriter) OnWritten(f func()) bool {
	if l := w.cn.lane; w.cn.phase == phLane && l.pending && l.gen == w.gen {
		l.onWritten = f
		return true
	}
	return false
}

// laneWritten runs the answer's OnWritten once the connection's output is
// all written (sent, scan).
func (cn *conn) laneWritten() {
	l := cn.lane
	if l.written == nil || cn.backlog() > 0 {
		return
	}
	f := l.written
	l.written = nil
	f()
}

// laneState is an HTTPLane connection's request state.
type laneState struct {
	pending  bool // a request is being answered
	parsing  bool // Serve is running
	resume   bool // a parse task is queued
	hand     bool // hand over once the output is written (retried by scan)
	handTask bool // a hand-over task is queued
	blocked  bool // the peer does not read its answers: no request is read until it does (scan)
	head     int  // the parsed head's length while its body arrives; 0 otherwise
	scan     int  // the bytes of an incomplete head scanned for its end in earlier reads
	req      *http.Request
	gen      uint32 // the request being answered
	headAt   int64  // coarse unix ns of the current request's first byte; 0 when none
	onClose  func()
	// onWritten is the pending request's OnWritten; written, once it is
	// answered, until its answer is written (laneWritten) or the
	// connection closes.
	onWritten, written func()

	// While hand or blocked waits for the peer to read its answers: when
	// the scan last saw the backlog shrink (0 before the first scan), and
	// the backlog it saw (laneStalled).
	stallAt      int64
	stallBacklog int
}

// Reasons a lane connection goes to net/http or closes.
var (
	errLaneHandOff   = errors.New("loop: http lane: connection handed to net/http")
	errLaneSlow      = errors.New("loop: http lane: request did not arrive in time")
	errLaneReadAhead = errors.New("loop: http lane: too many bytes sent ahead of the answers")
	errLaneUnread    = errors.New("loop: http lane: answers left unread for the idle timeout")
)

// laneRequest handles one request of an HTTPLane connection.
func (cn *conn) laneRequest() bool {
	l := cn.lane
	e := cn.ls.e
	n := cn.in.InboundBuffered()
	if n > e.lane.MaxBody+e.http.headerLimit()+laneReadAhead {
		// gnet reads whatever arrives: a peer pipelining while its
		// request is answered, or while it does not read the answers,
		// would otherwise make the loop hold any amount.
		cn.die(CloseTooBig, errLaneReadAhead)
		return false
	}
	if l.pending || l.hand {
		return false
	}
	if l.written != nil {
		// gnet drains its buffer without telling us: a peer that read
		// its answer whole and asks again must find its slots free, not
		// wait for the scan.
		cn.laneWritten()
	}
	if n == 0 {
		l.headAt = 0
		return false
	}
	if l.headAt == 0 {
		l.headAt = e.now()
	}
	if cn.overLimit {
		// Past the port's connection cap only health probes are served
		// (by net/http's spare connections): idle keep-alive clients
		// filling the port must not fail the router's probes.
		probe, more := laneHealthProbe(cn.peekHead(n))
		if probe {
			cn.laneHandOff()
			return false
		}
		if more {
			return false // the header timeout bounds the wait
		}
		cn.writeNow(laneOverLimit)
		cn.die(CloseMaxConns, errMaxConns)
		return false
	}
	if cn.overHighWater() {
		// Pipelined requests from a peer that does not read the
		// answers: read no more until it does (resumed by scan), so
		// that its answers cannot pile up without bound.
		l.blocked = true
		return false
	}
	r, head := l.req, l.head
	if r == nil {
		limit := e.laneHeadLimit()
		b, _ := cn.in.Peek(min(n, limit))
		// The scan resumes where the last read's stopped, as the
		// upgrade's does (http.go: handleHTTPFrom): scanned whole at each
		// read, a head dribbled a byte a write cost the loop the square
		// of its length.
		from := max(min(l.scan, len(b))-3, 0)
		if e.http.scanned != nil {
			e.http.scanned.Add(int64(len(b) - from))
		}
		i := bytes.Index(b[from:], crlfcrlf)
		if i < 0 {
			// A head with a bare LF (or CR) may never show CRLF CRLF: a
			// request of LF-ended lines alone (printf piped to nc) waited
			// for it until the header timeout and was closed unanswered.
			// net/http ends such a head at its blank line and answers it
			// (or refuses it, 400), as laneHeadOK hands over the heads
			// that do end in CRLF CRLF. Only the bytes new since the last
			// read are looked at (one back, for a CR that ended it).
			bare := bareLineEnd(b, max(min(l.scan, len(b))-1, 0))
			l.scan = len(b)
			if n >= limit || bare {
				cn.laneHandOff() // net/http answers it (431 past the limit)
			}
			return false
		}
		l.scan = 0
		head = from + i + 4
		ls := cn.ls
		ls.laneHead.Reset(b[:head])
		ls.laneBR.Reset(&ls.laneHead)
		var err error
		r, err = http.ReadRequest(ls.laneBR)
		if err != nil || r.ProtoMajor != 1 || r.ProtoMinor < 1 || len(r.TransferEncoding) > 0 || r.ContentLength < 0 ||
			r.ContentLength > int64(e.lane.MaxBody) || r.Header["Expect"] != nil || r.Header["Upgrade"] != nil ||
			!laneHeadOK(b[:head], r) {
			cn.laneHandOff()
			return false
		}
		// ReadRequest's Body reads from the loop's head reader, which the
		// next head parsed on this loop (another connection's) reuses.
		r.Body = http.NoBody
	}
	total := head + int(r.ContentLength)
	if n < total {
		// The body is on its way (bounded by scan): keep the parsed
		// head, so that a body in many small pieces is not parsed again
		// for each.
		l.req, l.head = r, head
		return false
	}
	l.req, l.head = nil, 0
	b, _ := cn.in.Peek(total)
	r.RemoteAddr = cn.remote
	l.gen++
	l.pending, l.parsing = true, true
	ok := e.lane.Lane.Serve(r, b[head:total], LaneWriter{cn: cn, gen: l.gen})
	l.parsing = false
	if !ok {
		l.pending, l.onClose = false, nil
		cn.laneHandOff()
		return false
	}
	cn.in.Discard(total)
	l.headAt = 0
	return cn.phase == phLane && !l.pending
}

// laneHeadOK reports whether net/http's server would take head (parsed
// as r) as the lane does; anything else goes to net/http, which answers
// it (400). ReadRequest alone is more lenient than the server: it ends a
// head at a blank line also after bare LFs (the lane looks for CRLF CRLF,
// and would take the next request's head for part of this one), and
// accepts a header name with a space before its colon ("Content-Length :
// 5", not a Content-Length for ReadRequest) and a missing Host, which the
// server refuses.
func laneHeadOK(head []byte, r *http.Request) bool {
	if bytes.Count(head, lf) != bytes.Count(head, crlf) || r.Host == "" {
		return false
	}
	for k := range r.Header {
		if strings.IndexByte(k, ' ') >= 0 {
			return false
		}
	}
	return true
}

var lf, crlf = []byte("\n"), []byte("\r\n")

// peekHead returns up to the first laneProbeLen of the n buffered bytes.
func (cn *conn) peekHead(n int) []byte {
	b, _ := cn.in.Peek(min(n, laneProbeLen))
	return b
}

// laneProbes are the request lines' starts of the health probes the lane
// hands to net/http past the connection cap (the gateway's /healthz and
// /readyz, GET or HEAD), each followed by a space or '?'.
var laneProbes = [...]string{"GET /healthz", "GET /readyz", "HEAD /healthz", "HEAD /readyz"}

const laneProbeLen = len("HEAD /healthz") + 1

// laneHealthProbe reports whether b starts a health probe's request line,
// or may once more bytes come (more).
func laneHealthProbe(b []byte) (probe, more bool) {
	for _, p := range laneProbes {
		if len(b) <= len(p) {
			if strings.HasPrefix(p, string(b)) {
				more = true
			}
			continue
		}
		if string(b[:len(p)]) == p && (b[len(p)] == ' ' || b[len(p)] == '?') {
			return true, false
		}
	}
	return false, more
}

// laneOverLimit answers a request past the listener's connection cap.
var laneOverLimit = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 35\r\nConnection: close\r\nRetry-After: 1\r\n\r\nmaximum connection count reached.\r\n")

// laneHandOff gives the connection to net/http once nothing is pending.
func (cn *conn) laneHandOff() {
	l := cn.lane
	if cn.phase != phLane || l.pending {
		return
	}
	if len(cn.out) > 0 || cn.c.OutboundBuffered() > 0 {
		// An answer is still on its way out: net/http must not overtake
		// it. The loop's flush writes it; a task after that flush hands
		// over, or scan does once a peer slow to read has taken it.
		l.hand = true
		if len(cn.out) > 0 && !l.handTask {
			l.handTask = true
			cn.ls.Execute(func() {
				l.handTask = false
				if l.hand {
					cn.laneHandOff()
				}
			})
		}
		return
	}
	l.hand = false
	n := cn.in.InboundBuffered()
	var pre []byte
	if n > 0 {
		b, _ := cn.in.Peek(n)
		pre = bytes.Clone(b)
	}
	nc, err := dupConn(cn.c.Fd())
	if err != nil {
		cn.die(CloseReset, err)
		return
	}
	cn.in.Discard(n)
	cn.die(CloseHandOff, errLaneHandOff)
	cn.ls.e.lane.Lane.HandOff(&prefixConn{Conn: nc, pre: pre})
}

// dupConn makes a net.Conn (on Go's poller) of a duplicate of fd, so that
// the socket outlives gnet's descriptor, which gnet deregisters from its
// epoll and closes.
func dupConn(fd int) (net.Conn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "http-lane")
	nc, err := net.FileConn(f) // its own duplicate
	f.Close()
	return nc, err
}

// prefixConn is a connection whose first reads return pre.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// laneDeadlines enforces an HTTPLane connection's deadlines; called by
// deadlines (from scan, once a second).
func (cn *conn) laneDeadlines(now int64) {
	l := cn.lane
	lc := &cn.ls.e.lane
	cn.laneWritten() // gnet drains its buffer without telling us
	switch {
	case l.hand:
		cn.laneHandOff()
		if l.hand && cn.laneStalled(now) {
			cn.die(CloseSlowConsumer, errLaneUnread)
		}
	case l.blocked:
		if !cn.overHighWater() {
			l.blocked = false
			l.stallAt = 0
			cn.ls.Execute(cn.laneResume)
		} else if cn.laneStalled(now) {
			cn.die(CloseSlowConsumer, errLaneUnread)
		}
	case l.pending:
	case l.headAt != 0:
		age := now - l.headAt
		if l.req != nil || cn.laneHeadIn() {
			// A body that trickles in: net/http reads the rest, within
			// its body timeout, and answers 408 past it, as for any
			// request it reads itself.
			if age > int64(laneBodyGrace) {
				cn.laneHandOff()
			}
		} else if age > int64(lc.HeaderTimeout) {
			cn.die(CloseHandshakeTimeout, errLaneSlow)
		}
	case now-cn.lastRead > int64(lc.IdleTimeout):
		cn.die(CloseIdle, nil)
	}
}

// laneStalled reports whether the peer of a connection waiting for it to
// read its answers (hand, blocked) has taken none of them for the idle
// timeout. It counts from the scan that last saw the backlog shrink, not
// from the peer's last byte: a peer that never reads must not keep its
// connection (and its unread answers) by sending a byte now and then.
func (cn *conn) laneStalled(now int64) bool {
	l := cn.lane
	bl := cn.backlog()
	if l.stallAt == 0 || bl < l.stallBacklog {
		l.stallAt = now
	}
	l.stallBacklog = bl
	return now-l.stallAt > int64(cn.ls.e.lane.IdleTimeout)
}

// laneReadAhead is how far past one whole request (head and largest
// body) a peer may send ahead of its answers.
const laneReadAhead = 64 << 10

// laneBodyGrace is how long the lane waits for a body after its head
// before net/http takes the connection.
const laneBodyGrace = time.Second

// laneHeadIn reports whether a whole request head is buffered. Called by
// the scan while no parsed head waits (l.req nil), it resumes where the
// reads' scan stopped (laneState.scan: no CRLF CRLF before it in the
// buffered head), three bytes back for one split across reads. Before,
// it scanned the whole head again each second: a lane connection
// holding an incomplete head of up to 64 KiB cost its loop that much a
// second until the header timeout.
func (cn *conn) laneHeadIn() bool {
	n := min(cn.in.InboundBuffered(), cn.ls.e.laneHeadLimit())
	b, _ := cn.in.Peek(n)
	from := max(min(cn.lane.scan, len(b))-3, 0)
	if e := cn.ls.e; e.http.scanned != nil {
		e.http.scanned.Add(int64(len(b) - from))
	}
	return bytes.Contains(b[from:], crlfcrlf)
}

// laneHeadLimit is the longest request head the lane reads itself: the
// loop's header limit, or LaneConfig.MaxHeader when smaller. Before,
// heads up to the loop's limit (limits.max_handshake, 8 KiB) were served
// whatever a smaller gateway.limits.max_header said.
func (e *Engine) laneHeadLimit() int {
	limit := e.http.headerLimit()
	if m := e.lane.MaxHeader; m > 0 && m < limit {
		return m
	}
	return limit
}

// laneClosed runs when an HTTPLane connection closes.
func (cn *conn) laneClosed() {
	l := cn.lane
	f, w, ow := l.onClose, l.written, l.onWritten
	l.pending, l.onClose, l.written, l.onWritten = false, nil, nil, nil
	if f != nil {
		f()
	}
	if w != nil {
		w()
	}
	if ow != nil {
		ow()
	}
}

// laneReader is the per-loop state for parsing request heads.
type laneReader struct {
	laneHead bytes.Reader
	laneBR   *bufio.Reader
}

func newLaneBR() *bufio.Reader { return bufio.NewReaderSize(eofReader{}, 4096) }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// laneStatusLine is the start of a response with status code (the Lane's
// helper for building responses).
func LaneStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}
