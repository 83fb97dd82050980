package loop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// FuzzConnStateMachine drives whole connections — sniffing, the HTTP
// upgrade and the RawSocket handshake, framing, keepalive, backpressure and
// WAMP sessions in a real router, the TLS handshake's records — through the
// engine's own gnet callbacks
// (OnOpen, OnTraffic, OnClose), with a fake gnet connection whose input
// arrives in fuzzed chunks and which can fail a write the way gnet does:
// by closing the connection synchronously, inside the write. Between
// chunks the script advances the clock and runs the deadline scan, runs the
// queued loop tasks (round flushes, router mailbox drains), closes the
// connection from the peer's side or fills its outbound buffer.
//
// Properties: nothing panics; nothing is written to, spilled to or closed
// on a connection after it is gone; the close is recorded exactly once;
// the connection's accounting (inbound and outbound bytes, descriptors,
// open connections) returns to zero; and what the router wrote is a
// well-formed byte stream for the transport (an HTTP response, or a
// RawSocket handshake reply and frames, or a 101 and server WebSocket
// frames).
func FuzzConnStateMachine(f *testing.F) {
	ws := func(b0 byte, p []byte) []byte { return wsFrameBytes(b0, p, false) }
	hello := []byte(`[1,"realm1",{"roles":{"caller":{},"callee":{},"publisher":{},"subscriber":{}}}]`)
	call := []byte(`[48,1,{},"wamp.session.count"]`)
	sub := []byte(`[32,2,{},"com.fuzz"]`)
	pub := []byte(`[16,3,{"acknowledge":true,"exclude_me":false},"com.fuzz",[1]]`)
	upgrade := wsUpgradeRequest("/ws", "wamp.2.json")
	// Script: [listener][op len bytes...]... (see runConnScript).
	seed := func(listener byte, steps ...[]byte) []byte {
		out := []byte{listener}
		for _, s := range steps {
			out = append(out, s...)
		}
		return out
	}
	feed := func(b []byte) []byte { // op 0 with a 2-byte length
		return append([]byte{0, byte(len(b) >> 8), byte(len(b))}, b...)
	}
	f.Add(seed(0, feed(rsHandshake(proto.JSON, 15)), feed(rsFrame(0, hello)), feed(rsFrame(0, call)),
		feed(rsFrame(1, []byte("ping"))), []byte{1}))
	f.Add(seed(0, feed(upgrade), feed(ws(0x81, hello)), feed(ws(0x81, sub)), feed(ws(0x81, pub)),
		feed(ws(0x89, []byte("p"))), []byte{4}, feed(ws(0x81, call))))
	f.Add(seed(1, feed(upgrade[:10]), []byte{2, 20}, feed(upgrade[10:])))
	f.Add(seed(2, feed(rsHandshake(proto.MsgPack, 0)), []byte{2, 40}, []byte{2, 15}))
	f.Add(seed(0, feed(rsHandshake(proto.JSON, 15)), feed(rsFrame(0, hello)), []byte{5, 8},
		feed(bytes.Repeat(rsFrame(1, []byte("ping")), 50)), []byte{3}))
	f.Add(seed(0, feed(upgrade), feed(ws(0x81, hello)), feed(ws(0x88, []byte{3, 232}))))
	f.Add(seed(0, feed([]byte("GET /healthz HTTP/1.1\r\n\r\n"))))
	f.Add(seed(0, feed([]byte{0x16, 3, 1})))
	// The TLS listener: a real ClientHello (its handshake then runs on a
	// goroutine while the script goes on), cut, or followed by garbage.
	ch := clientHello(f)
	f.Add(seed(3, feed(ch), []byte{1}, []byte{2, 5}, feed([]byte{23, 3, 3, 0, 1, 0}), []byte{1}))
	f.Add(seed(3, feed(ch[:len(ch)/2]), []byte{2, 20}, feed(ch[len(ch)/2:])))
	f.Add(seed(3, feed([]byte{0x16, 3, 1, 0x40, 0x01}), []byte{3}))
	// The HTTP lane (port 13, fuzzLane): answered at once, later (a loop
	// task), with a close, pipelined, handed over (which fails here: the
	// fake connection has no descriptor), cut, slow.
	laneReq := func(path, body string) []byte {
		return []byte("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	f.Add(seed(4, feed(laneReq("/now", "{}")), feed(laneReq("/later", "[1]")), []byte{1}, feed(laneReq("/close", ""))))
	f.Add(seed(4, feed(append(append(laneReq("/later", "a"), laneReq("/now", "b")...), laneReq("/hand", "c")...)), []byte{1}, []byte{1}))
	f.Add(seed(4, feed(laneReq("/later", "x")[:20]), []byte{2, 2}, feed(laneReq("/later", "x")[20:]), []byte{5, 8}, []byte{1}, []byte{2, 1}))
	f.Add(seed(4, feed([]byte("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), []byte{1}))
	f.Add(seed(4, feed(laneReq("/later", "1")), []byte{3}, []byte{1}))

	f.Fuzz(func(t *testing.T, script []byte) {
		runConnScript(t, script)
	})
}

// The fixture: one router and one engine (never started: no sockets), a
// fake event loop whose tasks the script runs, and three listeners (both,
// WebSocket only, RawSocket only) the fuzzer picks from, plus a TLS one
// (TestTLSTrafficAllocs). Shared by all inputs of a process.
var (
	fzCert   *testCert // the TLS listener's (port 12)
	fzOnce   sync.Once
	fzEngine *Engine
	fzLoop   *fakeLoop
	fzMu     sync.Mutex // one input at a time
)

func connFixture() (*Engine, *fakeLoop) {
	fzOnce.Do(func() {
		fzCert = newTestCert(panicTB{})
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1", Anonymous: true}}, Shards: 1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			panic(err)
		}
		e, err := New(r, Options{
			Listeners: []Listener{{Addr: "127.0.0.1:9"}, {Addr: "127.0.0.1:10", Transport: WebSocketOnly},
				{Addr: "127.0.0.1:11", Transport: RawSocketOnly}, {Addr: "127.0.0.1:12", TLS: fzCert.server},
				{Addr: "127.0.0.1:13", Transport: HTTPLane}},
			Lane:       LaneConfig{Lane: fuzzLane{}, MaxBody: 4 << 10, HeaderTimeout: 3 * time.Second, IdleTimeout: time.Minute},
			MaxMessage: 256 << 10, MaxHandshake: 1 << 10, HighWater: 4 << 10, HardLimit: 16 << 10,
			MaxInboundTotal: 1 << 20, MaxOutboundTotal: 1 << 20, Flush: FlushTraffic,
			PingInterval: 10 * time.Second, PingTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			HandshakeTimeout: 3 * time.Second,
			Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			panic(err)
		}
		fzEngine, fzLoop = e, &fakeLoop{}
	})
	return fzEngine, fzLoop
}

// fakeLoop is a gnet.EventLoop whose tasks wait until the script runs
// them. Only Execute is implemented.
type fakeLoop struct {
	gnet.EventLoop
	mu    sync.Mutex
	tasks []gnet.Runnable
}

func (l *fakeLoop) Execute(_ context.Context, r gnet.Runnable) error {
	l.mu.Lock()
	l.tasks = append(l.tasks, r)
	l.mu.Unlock()
	return nil
}

// run runs the queued tasks (and those they queue), up to a bound.
func (l *fakeLoop) run() {
	for range 100 {
		l.mu.Lock()
		batch := l.tasks
		l.tasks = nil
		l.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, r := range batch {
			r.Run(context.Background())
		}
	}
}

// fakeConn is a gnet.Conn over an in-memory buffer. Methods the engine is
// not expected to call are not implemented (they panic: the nil embedded
// interface).
type fakeConn struct {
	gnet.Conn
	t        *testing.T
	h        *handler
	el       *fakeLoop
	local    net.Addr
	in       *inBuf
	out      bytes.Buffer // what reached the socket
	outQueue int          // bytes "queued in gnet": OutboundBuffered
	ctx      any
	closed   bool // gnet closed it (OnClose ran)
	failNext bool // the next write fails, closing the connection inside Write
	closeReq bool // the engine asked for a close
}

func (c *fakeConn) Peek(n int) ([]byte, error) { return c.in.Peek(n) }
func (c *fakeConn) Discard(n int) (int, error) { return c.in.Discard(n) }
func (c *fakeConn) InboundBuffered() int       { return c.in.InboundBuffered() }
func (c *fakeConn) OutboundBuffered() int      { return c.outQueue }
func (c *fakeConn) Context() any               { return c.ctx }
func (c *fakeConn) SetContext(ctx any)         { c.ctx = ctx }
func (c *fakeConn) EventLoop() gnet.EventLoop  { return c.el }
func (c *fakeConn) LocalAddr() net.Addr        { return c.local }
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *fakeConn) Fd() int                { c.mustBeOpen("Fd (spill)"); return -1 } // write(2) fails: EBADF
func (c *fakeConn) Close() error           { c.mustBeOpen("Close"); c.closeReq = true; return nil }
func (c *fakeConn) mustBeOpen(what string) { c.t.Helper(); c.check(what) }
func (c *fakeConn) check(what string) {
	c.t.Helper()
	if c.closed {
		c.t.Fatalf("%s on a closed connection", what)
	}
}
func (c *fakeConn) Write(p []byte) (int, error) { return c.write(p) }

// write is gnet's write: on a failure it closes the connection
// synchronously, running OnClose before it returns.
func (c *fakeConn) write(p []byte) (int, error) {
	c.mustBeOpen("Write")
	if c.failNext {
		c.failNext = false
		c.gnetClose(syscall.EPIPE)
		return 0, syscall.EPIPE
	}
	c.out.Write(p)
	return len(p), nil
}

// fakeAccept does to c what an acceptor does to a connection before OnOpen
// (accept.go): counts its descriptor, counts it pending on its loop, and
// tells it its listener, the one whose address is c's local address.
func fakeAccept(e *Engine, c *fakeConn) *fakeConn {
	for _, ln := range e.lns {
		if ln.cfg.Addr == c.local.String() {
			if !e.takeFDs(1) {
				panic("fakeAccept: descriptor budget spent")
			}
			ls := e.loopOf(c.el)
			ls.pending.Add(1)
			c.ctx = &accepted{ln: ln, loop: ls}
			return c
		}
	}
	panic("fakeAccept: no listener on " + c.local.String())
}

// gnetClose is gnet's close: OnClose once, then the connection is gone.
func (c *fakeConn) gnetClose(err error) {
	if c.closed {
		return
	}
	c.closed = true
	c.h.OnClose(c, err)
}

// runConnScript runs one script: the first byte picks the listener, then
// steps: op 0 feeds [len16] bytes; 1 runs the loop's queued tasks; 2
// advances the clock by [n] seconds and scans; 3 closes from the peer's
// side; 4 makes the next write fail; 5 sets the outbound buffer to [n]
// KiB; 6 runs OnTraffic with nothing new.
func runConnScript(t *testing.T, script []byte) {
	if len(script) == 0 {
		return
	}
	fzMu.Lock()
	defer fzMu.Unlock()
	e, el := connFixture()
	h := &handler{e: e}
	before := e.Stats()
	ports := []int{9, 10, 11, 12, 13}
	c := &fakeConn{t: t, h: h, el: el, in: newInBuf(1 << 20),
		local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[int(script[0])%len(ports)]}}
	if _, act := h.OnOpen(fakeAccept(e, c)); act != gnet.None {
		t.Fatalf("OnOpen: %v", act)
	}
	ls := e.loopOf(el)
	traffic := func() {
		if c.closed {
			return
		}
		if h.OnTraffic(c) == gnet.Close {
			c.gnetClose(nil)
		}
	}
	s := script[1:]
	for len(s) > 0 && !c.closed {
		op := s[0] % 7
		s = s[1:]
		arg := func() int {
			if len(s) == 0 {
				return 0
			}
			v := int(s[0])
			s = s[1:]
			return v
		}
		switch op {
		case 0:
			n := arg()<<8 | arg()
			n = min(n, len(s))
			c.in.write(s[:n])
			s = s[n:]
			traffic()
		case 1:
			el.run()
		case 2:
			e.clock.Add(int64(arg()) * int64(time.Second))
			ls.Execute(ls.scan)
			el.run()
		case 3:
			c.gnetClose(io.EOF)
		case 4:
			c.failNext = true
		case 5:
			c.outQueue = arg() << 10
		case 6:
			traffic()
		}
		if c.closeReq {
			c.gnetClose(nil) // gnet runs the close task
		}
	}
	// The end: the peer goes; pending tasks run.
	c.gnetClose(io.EOF)
	el.run()
	if cn, ok := c.ctx.(*conn); ok && cn.phase != phGone {
		t.Fatalf("connection not gone after OnClose: phase %d", cn.phase)
	}
	after := e.Stats()
	closes := uint64(0)
	for i := range after.Closes { // the lane's (port 13) are counted apart
		closes += after.Closes[i] - before.Closes[i] + after.LaneCloses[i] - before.LaneCloses[i]
	}
	if closes != 1 {
		t.Fatalf("%d closes recorded, want 1", closes)
	}
	if after.Inbound != 0 || after.Outbound != 0 || after.FDs != before.FDs || after.Conns != before.Conns || after.LaneConns != before.LaneConns {
		t.Fatalf("accounting after close: inbound %d outbound %d fds %d->%d conns %d->%d lane conns %d->%d",
			after.Inbound, after.Outbound, before.FDs, after.FDs, before.Conns, after.Conns, before.LaneConns, after.LaneConns)
	}
	if len(ls.conns) != 0 || len(ls.dirty) != 0 {
		t.Fatalf("loop still holds %d connections, %d dirty", len(ls.conns), len(ls.dirty))
	}
	check := checkOutput
	switch c.local.(*net.TCPAddr).Port {
	case 12:
		check = checkTLSOutput
	case 13:
		check = checkLaneOutput
	}
	if err := check(c.out.Bytes()); err != nil {
		t.Fatalf("output: %v\n% x", err, c.out.Bytes()[:min(c.out.Len(), 256)])
	}
}

// fuzzLane is the fixture's Lane: it answers by path, at once ("/now"),
// from a loop task ("/later"), with a close ("/close"), or hands the
// connection over ("/hand", anything else).
type fuzzLane struct{}

func (fuzzLane) Serve(r *http.Request, body []byte, w LaneWriter) bool {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
	switch r.URL.Path {
	case "/now":
		w.Respond(resp, false)
	case "/close":
		w.Respond(resp, true)
	case "/later":
		gone := false
		w.OnClose(func() { gone = true })
		w.cn.ls.Execute(func() {
			if !gone {
				w.Respond(resp, false)
			}
		})
	default:
		return false
	}
	return true
}

func (fuzzLane) HandOff(c net.Conn) { c.Close() }

// checkLaneOutput checks that what the router wrote on an HTTP lane
// connection is a sequence of whole HTTP/1.1 responses.
func checkLaneOutput(b []byte) error {
	for len(b) > 0 {
		end := bytes.Index(b, crlfcrlf)
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) || end < 0 {
			return errors.New("not an HTTP response")
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b[:end+4])), nil)
		if err != nil || resp.ContentLength < 0 {
			return fmt.Errorf("bad response head: %v", err)
		}
		n := end + 4 + int(resp.ContentLength)
		if len(b) < n {
			return errors.New("truncated response body")
		}
		b = b[n:]
	}
	return nil
}

// checkTLSOutput checks that what the router wrote on a TLS connection is
// a sequence of whole TLS records (what they carry is crypto/tls's), or
// the answer to plaintext HTTP alone.
func checkTLSOutput(b []byte) error {
	if bytes.Equal(b, httpOnTLSReply) {
		return nil
	}
	for len(b) > 0 {
		if len(b) < recordHeaderLen || b[0] < 20 || b[0] > 23 || b[1] != 3 {
			return errors.New("bad TLS record header")
		}
		n := recordHeaderLen + int(binary.BigEndian.Uint16(b[3:]))
		if n > recordHeaderLen+maxCiphertext || len(b) < n {
			return errors.New("truncated or oversized TLS record")
		}
		b = b[n:]
	}
	return nil
}

// checkOutput checks that what the router wrote is a well-formed stream: an
// HTTP response (a 101 followed by server WebSocket frames, or an answer),
// or a RawSocket handshake reply followed, if accepted, by frames. A
// stream may end anywhere after a whole unit.
func checkOutput(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if b[0] == rawMagic {
		if len(b) < 4 {
			return errors.New("short RawSocket reply")
		}
		if b[1]&0x0f == 0 { // an error reply ends the stream
			if len(b) != 4 {
				return errors.New("bytes after a RawSocket error reply")
			}
			return nil
		}
		for b = b[4:]; len(b) > 0; {
			if len(b) < 4 || b[0]&0xf8 != 0 || b[0]&7 > 2 {
				return errors.New("bad RawSocket frame prefix")
			}
			n := 4 + int(binary.BigEndian.Uint32(b)&0xffffff)
			if len(b) < n {
				return errors.New("truncated RawSocket frame")
			}
			b = b[n:]
		}
		return nil
	}
	end := bytes.Index(b, crlfcrlf)
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) || end < 0 {
		return errors.New("not an HTTP response")
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 101 ")) {
		return nil // an answer and its body
	}
	for b = b[end+4:]; len(b) > 0; {
		if len(b) < 2 || b[0]&0x70 != 0 || b[0]&0x80 == 0 || b[1]&0x80 != 0 {
			return errors.New("bad server WebSocket frame header")
		}
		op := b[0] & 0x0f
		if op != 1 && op != 2 && op != 8 && op != 9 && op != 10 {
			return errors.New("bad server WebSocket opcode")
		}
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return errors.New("truncated header")
			}
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return errors.New("truncated header")
			}
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if len(b) < hl+n {
			return errors.New("truncated WebSocket frame")
		}
		if op == 8 && len(b) != hl+n {
			return errors.New("bytes after a close frame")
		}
		b = b[hl+n:]
	}
	return nil
}

// TestTrafficAllocs: a read callback that carries a PUBLISH (no
// subscribers, no acknowledgement) and a ping, answered and flushed, does
// not allocate once warm, on either transport: the frame path, the
// large-frame check that runs whenever a frame is incomplete, the pong and
// the flush.
func TestTrafficAllocs(t *testing.T) {
	fzMu.Lock()
	defer fzMu.Unlock()
	e, el := connFixture()
	h := &handler{e: e}
	pub := []byte(`[16,1,{},"com.allocs",[1]]`)
	hello := []byte(`[1,"realm1",{"roles":{"publisher":{}}}]`)
	for _, tc := range []struct {
		name      string
		handshake []byte
		frames    []byte
		hello     []byte
	}{
		{"rawsocket", rsHandshake(proto.JSON, 15), append(rsFrame(0, pub), rsFrame(1, []byte("p"))...), rsFrame(0, hello)},
		{"websocket", wsUpgradeRequest("/ws", "wamp.2.json"),
			append(wsFrameBytes(0x81, pub, false), wsFrameBytes(0x89, []byte("p"), false)...), wsFrameBytes(0x81, hello, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeConn{t: t, h: h, el: el, in: newInBuf(1 << 20), local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}
			h.OnOpen(fakeAccept(e, c))
			defer c.gnetClose(io.EOF)
			c.in.write(tc.handshake)
			h.OnTraffic(c)
			c.in.write(tc.hello)
			h.OnTraffic(c)
			el.run()
			if !bytes.Contains(c.out.Bytes(), []byte("[2,")) {
				t.Fatalf("no WELCOME: %q", c.out.Bytes())
			}
			// The publisher's own mask makes each WebSocket frame differ;
			// replaying the same bytes is fine (unmasking happens in place
			// on a copy).
			allocs := testing.AllocsPerRun(200, func() {
				c.out.Reset()
				c.in.write(tc.frames)
				if h.OnTraffic(c) != gnet.None {
					t.Fatal("closed")
				}
			})
			if c.out.Len() == 0 {
				t.Fatal("no pong")
			}
			if allocs != 0 {
				t.Fatalf("%v allocations per callback, want 0", allocs)
			}
		})
	}
}

// clientHello returns the first flight of a TLS client: its ClientHello
// record.
func clientHello(t testing.TB) []byte {
	t.Helper()
	w := newFakeWire()
	go tls.Client(w, &tls.Config{InsecureSkipVerify: true}).Handshake() // blocks reading forever; the test binary exits
	for deadline := time.Now().Add(ioTimeout); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		w.mu.Lock()
		b := append([]byte(nil), w.toServer...)
		w.mu.Unlock()
		if len(b) > 5 {
			return b
		}
	}
	t.Fatal("no ClientHello")
	return nil
}
