package loop

// Helpers for the socket-level tests: a raw WebSocket client and a raw
// RawSocket client driven byte by byte over a real loopback TCP connection,
// WAMP messages built with proto, and a "healthy session" checker (a caller
// and an echo callee using the client package) that tests run alongside bad
// input to show that it harms no one else.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// ioTimeout bounds every read a test waits on: generous, because the race
// detector on a shared two-core machine is slow; a healthy exchange takes
// milliseconds.
const ioTimeout = 10 * time.Second

// dialTCP connects to addr. rcvBuf > 0 sets SO_RCVBUF before connecting, so
// that the advertised window is small from the first segment.
func dialTCP(t testing.TB, addr string, rcvBuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: ioTimeout}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// shrinkRouterSendBuffer sets SO_SNDBUF of the router's end of c
// (routerFd) to n, so that a peer that does not read fills the router's
// socket after a few KiB rather than the megabytes loopback's autotuning
// allows.
func shrinkRouterSendBuffer(t testing.TB, c net.Conn, n int) {
	t.Helper()
	if err := syscall.SetsockoptInt(routerFd(t, c), syscall.SOL_SOCKET, syscall.SO_SNDBUF, n); err != nil {
		t.Fatal(err)
	}
}

// routerFd returns the router's end of c, found among this process's
// descriptors by its addresses (its ports swapped).
func routerFd(t testing.TB, c net.Conn) int {
	t.Helper()
	local, remote := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		peer, err1 := syscall.Getpeername(fd)
		me, err2 := syscall.Getsockname(fd)
		p, ok1 := peer.(*syscall.SockaddrInet4)
		m, ok2 := me.(*syscall.SockaddrInet4)
		if err1 == nil && err2 == nil && ok1 && ok2 && p.Port == local.Port && m.Port == remote.Port {
			return fd
		}
	}
	t.Fatalf("the router's end of %s is not among this process's descriptors", local)
	return -1
}

// writeSlowly writes b one byte per write with a pause between, so that the
// bytes arrive in separate segments (TCP_NODELAY is Go's default).
func writeSlowly(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	for i := range b {
		if _, err := c.Write(b[i : i+1]); err != nil {
			t.Fatalf("write byte %d of %d: %v", i, len(b), err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitClosed reads (and discards) until the peer closes the connection,
// failing if it does not within d. It returns what was read.
func waitClosed(t testing.TB, c net.Conn, d time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %v (read %d bytes)", d, got.Len())
			}
			return got.Bytes() // EOF or reset: closed
		}
	}
}

// ---- WAMP messages ----

func encodeMsg(t testing.TB, ser proto.Serializer, m *proto.Message) []byte {
	t.Helper()
	b, err := proto.Append(nil, ser, m)
	if err != nil {
		t.Fatalf("encode %v: %v", m.Type, err)
	}
	return b
}

func rawValue(t testing.TB, ser proto.Serializer, v any) proto.Raw {
	t.Helper()
	r, err := proto.EncodeValue(ser, v)
	if err != nil {
		t.Fatalf("encode value: %v", err)
	}
	return r
}

func helloMsg(t testing.TB, ser proto.Serializer) []byte {
	roles := map[string]any{"caller": map[string]any{}, "callee": map[string]any{},
		"publisher": map[string]any{}, "subscriber": map[string]any{}}
	return encodeMsg(t, ser, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"),
		Dict: rawValue(t, ser, map[string]any{"roles": roles})})
}

func emptyDict(t testing.TB, ser proto.Serializer) proto.Raw {
	return rawValue(t, ser, map[string]any{})
}

// ---- framing: WebSocket client ----

// wsFrameBytes builds a client frame: masked with a random key unless
// unmasked is set. b0 is the whole first octet (FIN, RSV, opcode).
func wsFrameBytes(b0 byte, payload []byte, unmasked bool) []byte {
	var out []byte
	out = append(out, b0)
	maskBit := byte(0x80)
	if unmasked {
		maskBit = 0
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, maskBit|byte(n))
	case n <= 0xffff:
		out = append(out, maskBit|126, byte(n>>8), byte(n))
	default:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if unmasked {
		return append(out, payload...)
	}
	var key [4]byte
	rand.Read(key[:])
	out = append(out, key[:]...)
	start := len(out)
	out = append(out, payload...)
	for i := range payload {
		out[start+i] ^= key[i%4]
	}
	return out
}

// cliFrame builds a final (or not) masked frame with opcode op.
func cliFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return wsFrameBytes(b0, payload, false)
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

func wsUpgradeRequest(path, subprotocol string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path)
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	if subprotocol != "" {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", subprotocol)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// httpResponse is a response read off a raw connection.
type httpResponse struct {
	status int
	header string
	body   string
}

// readHTTPResponse reads a response header and, when Content-Length is
// given, the body.
func readHTTPResponse(t testing.TB, br *bufio.Reader, c net.Conn) httpResponse {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr strings.Builder
	for {
		line, err := br.ReadString('\n')
		hdr.WriteString(line)
		if err != nil {
			t.Fatalf("reading HTTP response: %v (got %q)", err, hdr.String())
		}
		if line == "\r\n" {
			break
		}
	}
	var r httpResponse
	r.header = hdr.String()
	if _, err := fmt.Sscanf(r.header, "HTTP/1.1 %d", &r.status); err != nil {
		t.Fatalf("bad status line in %q", r.header)
	}
	for _, l := range strings.Split(r.header, "\r\n") {
		var n int
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Content-Length") {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			body := make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				t.Fatalf("reading body: %v", err)
			}
			r.body = string(body)
		}
	}
	return r
}

// wsClient is a raw WebSocket client.
type wsClient struct {
	t        testing.TB
	c        net.Conn
	br       *bufio.Reader
	ser      proto.Serializer
	autoPong bool // answer pings while waiting for messages
	pings    int  // pings seen by readMsg
}

// errWSClosed is returned by readMsg when a close frame arrives.
type errWSClosed struct {
	code   int
	reason string
}

func (e *errWSClosed) Error() string { return fmt.Sprintf("close frame %d %q", e.code, e.reason) }

// dialWS opens a WebSocket to the server with the subprotocol of ser.
func dialWS(t testing.TB, addr string, ser proto.Serializer) *wsClient {
	t.Helper()
	c := dialTCP(t, addr, 0)
	w := &wsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: ser, autoPong: true}
	if _, err := c.Write(wsUpgradeRequest("/ws", ser.Subprotocol(false))); err != nil {
		t.Fatal(err)
	}
	w.expectUpgrade()
	return w
}

func (w *wsClient) expectUpgrade() {
	w.t.Helper()
	r := readHTTPResponse(w.t, w.br, w.c)
	if r.status != 101 {
		w.t.Fatalf("upgrade: status %d: %q %q", r.status, r.header, r.body)
	}
	if want := "Sec-WebSocket-Protocol: " + w.ser.Subprotocol(false); !strings.Contains(r.header, want) {
		w.t.Fatalf("upgrade response lacks %q: %q", want, r.header)
	}
}

func (w *wsClient) write(b []byte) {
	w.t.Helper()
	w.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// dataOp is the opcode of a WAMP message in the client's serializer.
func (w *wsClient) dataOp() byte {
	if w.ser == proto.JSON {
		return opText
	}
	return opBinary
}

// send writes one WAMP message as one frame.
func (w *wsClient) send(b []byte) { w.t.Helper(); w.write(cliFrame(true, w.dataOp(), b)) }

// readFrame reads one server frame, checking that it is unmasked and final
// (the router neither masks nor fragments).
func (w *wsClient) readFrame(d time.Duration) (op byte, payload []byte, err error) {
	w.c.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err = io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("bad server frame header % x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err = io.ReadFull(w.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err = io.ReadFull(w.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("frame length %d", n)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(w.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, payload, nil
}

// readMsg returns the next WAMP message, answering pings when autoPong is
// set. A close frame gives an *errWSClosed.
func (w *wsClient) readMsg(d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	for {
		op, p, err := w.readFrame(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			w.pings++
			if w.autoPong {
				w.write(cliFrame(true, opPong, p))
			}
		case opPong:
		case opClose:
			ce := &errWSClosed{code: 1005}
			if len(p) >= 2 {
				ce.code, ce.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
			}
			return nil, ce
		case opText, opBinary:
			if (op == opText) != (w.ser == proto.JSON) {
				return nil, fmt.Errorf("message in a %d frame on %s", op, w.ser)
			}
			return p, nil
		default:
			return nil, fmt.Errorf("unexpected opcode %d", op)
		}
	}
}

// expectClose reads until a close frame and checks its code, then checks
// that the router closes the TCP connection.
func (w *wsClient) expectClose(code int) *errWSClosed {
	w.t.Helper()
	for {
		_, err := w.readMsg(ioTimeout)
		if err == nil {
			continue // messages sent before the close (e.g. an ABORT)
		}
		ce, ok := err.(*errWSClosed)
		if !ok {
			w.t.Fatalf("want close frame %d, got %v", code, err)
		}
		if ce.code != code {
			w.t.Fatalf("close code %d (%q), want %d", ce.code, ce.reason, code)
		}
		// Answer as a client does ([RFC6455 §5.5.1]); after a protocol
		// error the router has closed already and this write may fail.
		w.c.SetWriteDeadline(time.Now().Add(ioTimeout))
		w.c.Write(cliFrame(true, opClose, []byte{0x03, 0xe8}))
		if rest := waitClosed(w.t, w.c, ioTimeout); len(rest) > 0 {
			w.t.Fatalf("%d bytes after the close frame: % x", len(rest), rest[:min(len(rest), 32)])
		}
		return ce
	}
}

// ---- framing: RawSocket client ----

// rsClient is a raw RawSocket client.
type rsClient struct {
	t        testing.TB
	c        net.Conn
	br       *bufio.Reader
	ser      proto.Serializer
	maxLen   int // the router's announced maximum
	autoPong bool
	pings    int
}

// rsHandshake is the client handshake for ser with LENGTH exponent l.
func rsHandshake(ser proto.Serializer, l byte) []byte {
	return []byte{0x7f, l<<4 | byte(ser), 0, 0}
}

// dialRS opens a RawSocket session (handshake only) announcing 2^(9+l).
func dialRS(t testing.TB, addr string, ser proto.Serializer, l byte) *rsClient {
	t.Helper()
	c := dialTCP(t, addr, 0)
	r := &rsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: ser, autoPong: true}
	r.write(rsHandshake(ser, l))
	r.expectHandshake()
	return r
}

func (r *rsClient) expectHandshake() {
	r.t.Helper()
	var b [4]byte
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(r.br, b[:]); err != nil {
		r.t.Fatalf("handshake reply: %v", err)
	}
	if b[0] != 0x7f || b[1]&0x0f != byte(r.ser) || b[2] != 0 || b[3] != 0 {
		r.t.Fatalf("handshake reply % x", b)
	}
	r.maxLen = 1 << (9 + b[1]>>4)
}

func (r *rsClient) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func rsFrame(typ byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, payload...)
}

func (r *rsClient) send(b []byte) { r.t.Helper(); r.write(rsFrame(0, b)) }

func (r *rsClient) readFrame(d time.Duration) (typ byte, payload []byte, err error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	var h [4]byte
	if _, err = io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0xf8 != 0 {
		return 0, nil, fmt.Errorf("bad frame prefix % x", h)
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	payload = make([]byte, n)
	if _, err = io.ReadFull(r.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 7, payload, nil
}

func (r *rsClient) readMsg(d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	for {
		typ, p, err := r.readFrame(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0:
			return p, nil
		case 1:
			r.pings++
			if r.autoPong {
				r.write(rsFrame(2, p))
			}
		case 2:
		default:
			return nil, fmt.Errorf("frame type %d", typ)
		}
	}
}

// ---- WAMP over either ----

type msgConn interface {
	send(b []byte)
	readMsg(d time.Duration) ([]byte, error)
}

// wamp is a WAMP session driven by hand over a msgConn.
type wamp struct {
	t   testing.TB
	c   msgConn
	ser proto.Serializer
	req uint64
	id  uint64 // session id
}

func newWAMP(t testing.TB, c msgConn, ser proto.Serializer) *wamp {
	return &wamp{t: t, c: c, ser: ser}
}

func (p *wamp) next() *proto.Message {
	p.t.Helper()
	b, err := p.c.readMsg(ioTimeout)
	if err != nil {
		p.t.Fatalf("reading a WAMP message: %v", err)
	}
	m, err := proto.Decode(p.ser, b)
	if err != nil {
		p.t.Fatalf("decoding %q: %v", b[:min(len(b), 200)], err)
	}
	return m
}

func (p *wamp) expect(code proto.Code) *proto.Message {
	p.t.Helper()
	m := p.next()
	if m.Type != code {
		p.t.Fatalf("got %v (uri %q, args %s), want %v", m.Type, m.URI, describeRaw(m.Args), code)
	}
	return m
}

func describeRaw(r proto.Raw) string {
	if !r.Present() {
		return "-"
	}
	v, err := proto.DecodeValue(r)
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprint(v)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// join sends HELLO and expects WELCOME.
func (p *wamp) join() {
	p.t.Helper()
	p.c.send(helloMsg(p.t, p.ser))
	p.id = p.expect(proto.CodeWelcome).ID
}

func (p *wamp) nextReq() uint64 { p.req++; return p.req }

func (p *wamp) subscribe(topic string) uint64 {
	p.t.Helper()
	req := p.nextReq()
	p.c.send(encodeMsg(p.t, p.ser, &proto.Message{Type: proto.CodeSubscribe, Request: req,
		Dict: emptyDict(p.t, p.ser), URI: []byte(topic)}))
	m := p.expect(proto.CodeSubscribed)
	if m.Request != req {
		p.t.Fatalf("SUBSCRIBED for %d, want %d", m.Request, req)
	}
	return m.ID
}

func (p *wamp) register(proc string) uint64 {
	p.t.Helper()
	req := p.nextReq()
	p.c.send(encodeMsg(p.t, p.ser, &proto.Message{Type: proto.CodeRegister, Request: req,
		Dict: emptyDict(p.t, p.ser), URI: []byte(proc)}))
	return p.expect(proto.CodeRegistered).ID
}

func (p *wamp) callMsg(req uint64, proc string, args []any) []byte {
	m := &proto.Message{Type: proto.CodeCall, Request: req, Dict: emptyDict(p.t, p.ser), URI: []byte(proc)}
	if args != nil {
		m.Args = rawValue(p.t, p.ser, args)
	}
	return encodeMsg(p.t, p.ser, m)
}

func (p *wamp) publishMsg(req uint64, topic string, args []any, ack bool) []byte {
	m := &proto.Message{Type: proto.CodePublish, Request: req, URI: []byte(topic)}
	if ack {
		m.Dict = rawValue(p.t, p.ser, map[string]any{"acknowledge": true})
	} else {
		m.Dict = emptyDict(p.t, p.ser)
	}
	if args != nil {
		m.Args = rawValue(p.t, p.ser, args)
	}
	return encodeMsg(p.t, p.ser, m)
}

// call makes a call and returns the RESULT or ERROR.
func (p *wamp) call(proc string, args []any) *proto.Message {
	p.t.Helper()
	req := p.nextReq()
	p.c.send(p.callMsg(req, proc, args))
	m := p.next()
	if (m.Type != proto.CodeResult && m.Type != proto.CodeError) || m.Request != req {
		p.t.Fatalf("call %s: got %v for request %d", proc, m.Type, m.Request)
	}
	return m
}

func (p *wamp) goodbye() []byte {
	return encodeMsg(p.t, p.ser, &proto.Message{Type: proto.CodeGoodbye, Dict: emptyDict(p.t, p.ser),
		URI: []byte(proto.CloseGoodbyeAndOut)})
}

// args decodes a message's Args.
func args(t testing.TB, m *proto.Message) []any {
	t.Helper()
	if !m.Args.Present() {
		return nil
	}
	v, err := proto.DecodeValue(m.Args)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := v.([]any)
	return l
}

// ---- the client package ----

func (s *testServer) dialCfg(cfg client.Config) *client.Session {
	s.t.Helper()
	if cfg.Realm == "" {
		cfg.Realm = "realm1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		s.t.Fatalf("dial %s: %v", cfg.URL, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

var procSeq atomic.Int64

// registerEcho registers a fresh echo procedure on c and returns its URI.
func registerEcho(t testing.TB, c *client.Session) string {
	t.Helper()
	proc := fmt.Sprintf("com.test.echo%d", procSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	_, err := c.Register(ctx, proc, func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	}, nil)
	if err != nil {
		t.Fatalf("register %s: %v", proc, err)
	}
	return proc
}

// healthy is a pair of well-behaved sessions (a callee on RawSocket, a
// caller on WebSocket) whose calls must keep working whatever other
// connections do.
type healthy struct {
	t      testing.TB
	caller *client.Session
	proc   string
	n      atomic.Int64
}

func newHealthy(s *testServer) *healthy {
	s.t.Helper()
	callee := s.dial("rs", proto.MsgPack)
	h := &healthy{t: s.t, caller: s.dial("ws", proto.JSON), proc: registerEcho(s.t, callee)}
	h.check()
	return h
}

// check makes one call through the router and verifies the echo. Safe for
// concurrent use (subtests run in parallel).
func (h *healthy) check() { h.checkT(h.t) }

func (h *healthy) checkT(t testing.TB) {
	t.Helper()
	n := h.n.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	want := fmt.Sprintf("ping %d", n)
	res, err := h.caller.Call(ctx, h.proc, []any{want}, nil, nil)
	if err != nil {
		t.Fatalf("healthy session: call %d: %v", n, err)
	}
	if len(res.Args) != 1 || res.Args[0] != want {
		t.Fatalf("healthy session: echo %v, want %q", res.Args, want)
	}
}

// ---- engine introspection (on the loops' goroutines) ----

// connStat is a snapshot of one connection, taken on its loop.
type connStat struct {
	remote      string
	phase       phase
	backlog     int // bytes queued: gnet's outbound buffer plus our pending output
	outCap      int
	sessID      uint64
	hasSess     bool
	inbound     int
	isTLS       bool
	handshaking bool // a TLS handshake started (its first record was whole)
	tlsBufs     int  // capacity of crypto/tls's input buffers (tlstrim.go); -1 before the loop owns them
	tlsTrimmed  bool // they were released and nothing was read since (tlsConn.trimmed)
	overLmt     bool
	pingSent    bool
	pong        int // a waiting pong's length (pong.go)
}

// connStats snapshots every connection of every loop.
func (e *Engine) connStats(t testing.TB) []connStat {
	t.Helper()
	var mu sync.Mutex
	var out []connStat
	var wg sync.WaitGroup
	for _, ls := range e.allLoops() {
		wg.Add(1)
		err := ls.Execute(func() {
			defer wg.Done()
			var local []connStat
			for _, cn := range ls.conns {
				st := connStat{remote: cn.remote, phase: cn.phase, backlog: cn.backlog(),
					outCap: cap(cn.out), inbound: cn.c.InboundBuffered(), isTLS: cn.tls != nil, overLmt: cn.overLimit,
					handshaking: cn.tls != nil && cn.tls.hs != nil, tlsBufs: -1,
					pingSent: cn.pingSent != 0, pong: len(cn.pong)}
				if cn.sess != nil {
					st.hasSess, st.sessID = true, cn.sess.ID()
				}
				if cn.tls != nil && cn.tls.ready {
					st.tlsBufs, st.tlsTrimmed = tlsBuffered(cn.tls.tc), cn.tls.trimmed
				}
				local = append(local, st)
			}
			mu.Lock()
			out = append(out, local...)
			mu.Unlock()
		})
		if err != nil {
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("loops did not answer a stats request")
	}
	return out
}

// statOf returns the snapshot of the connection whose remote address is
// the local address of c.
func (e *Engine) statOf(t testing.TB, c net.Conn) (connStat, bool) {
	t.Helper()
	for _, st := range e.connStats(t) {
		if st.remote == c.LocalAddr().String() {
			return st, true
		}
	}
	return connStat{}, false
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isClosedErr reports whether err means the peer closed or reset.
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }

// subscribeRaw upgrades c to a MsgPack WebSocket, joins and subscribes to
// topic. Given a connection with a small receive buffer, it plays a
// subscriber that stops reading.
func subscribeRaw(t testing.TB, c net.Conn, topic string) *wamp {
	t.Helper()
	w := &wsClient{t: t, c: c, br: newReader(c), ser: proto.MsgPack, autoPong: true}
	w.write(wsUpgradeRequest("/ws", "wamp.2.msgpack"))
	w.expectUpgrade()
	p := newWAMP(t, w, proto.MsgPack)
	p.join()
	p.subscribe(topic)
	return p
}

// joinRS dials s over RawSocket with ser (maximum length 2^24) and joins
// realm1.
func (s *testServer) joinRS(t testing.TB, ser proto.Serializer) *wamp {
	t.Helper()
	p := newWAMP(t, dialRS(t, s.url, ser, 15), ser)
	p.join()
	return p
}

// registerBlob registers com.blob on a RawSocket MsgPack callee of s: the
// result of each call is one byte string of n bytes.
func (s *testServer) registerBlob(ctx context.Context, t testing.TB, n int) {
	t.Helper()
	callee := s.dial("rs", proto.MsgPack)
	blob := make([]byte, n)
	if _, err := callee.Register(ctx, "com.blob", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{blob}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
}
