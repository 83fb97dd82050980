package loop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// memEnd is one end of an in-memory, buffered connection for driving
// crypto/tls directly: writes never block; reads block until bytes are
// visible, or, once nonBlocking is set, return errWouldBlock (the shim's
// error) instead. Only visible bytes can be read: a test releases what the
// peer wrote a few bytes at a time (show), to cut records.
type memEnd struct {
	mu          sync.Mutex
	cond        sync.Cond
	buf         []byte // bytes written to this end by the peer
	visible     int    // how many of them Read may return
	autoShow    bool   // everything written is visible at once
	nonBlocking bool
	peer        *memEnd
}

func memPair() (a, b *memEnd) {
	a, b = &memEnd{autoShow: true}, &memEnd{autoShow: true}
	a.cond.L, b.cond.L = &a.mu, &b.mu
	a.peer, b.peer = b, a
	return a, b
}

func (m *memEnd) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.visible == 0 {
		if m.nonBlocking {
			return 0, errWouldBlock
		}
		m.cond.Wait()
	}
	n := copy(p, m.buf[:m.visible])
	m.buf = m.buf[n:]
	m.visible -= n
	return n, nil
}

func (m *memEnd) Write(p []byte) (int, error) {
	o := m.peer
	o.mu.Lock()
	o.buf = append(o.buf, p...)
	if o.autoShow {
		o.visible = len(o.buf)
	}
	o.cond.Broadcast()
	o.mu.Unlock()
	return len(p), nil
}

// show makes n more written bytes readable (all of them for n < 0).
func (m *memEnd) show(n int) {
	m.mu.Lock()
	if n < 0 || m.visible+n > len(m.buf) {
		n = len(m.buf) - m.visible
	}
	m.visible += n
	m.cond.Broadcast()
	m.mu.Unlock()
}

func (m *memEnd) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buf)
}

func (m *memEnd) Close() error                     { return nil }
func (m *memEnd) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memEnd) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memEnd) SetDeadline(time.Time) error      { return nil }
func (m *memEnd) SetReadDeadline(time.Time) error  { return nil }
func (m *memEnd) SetWriteDeadline(time.Time) error { return nil }

// TestTLSShimWouldBlockKeepsConnUsable holds the toolchain's crypto/tls to
// what the loop relies on (tls.go): after its transport's Read returns the
// shim's errWouldBlock — with no bytes, or in the middle of a record's
// header or body — a tls.Conn returns that error from Read, keeps the
// bytes of the partial record, and reads and writes normally once more
// bytes come; an error that is not temporary still fails it for good.
func TestTLSShimWouldBlockKeepsConnUsable(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cert := newTestCert(t)
			sEnd, cEnd := memPair()
			scfg := cert.server.Clone()
			scfg.MinVersion, scfg.MaxVersion = version, version
			server := tls.Server(sEnd, scfg)
			ccfg := cert.client.Clone()
			ccfg.ServerName = "127.0.0.1"
			client := tls.Client(cEnd, ccfg)
			errc := make(chan error, 1)
			go func() { errc <- client.Handshake() }()
			if err := server.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}

			// From here on the server's transport does not block, and only
			// what the test shows it is readable.
			sEnd.mu.Lock()
			sEnd.nonBlocking, sEnd.autoShow = true, false
			sEnd.visible = len(sEnd.buf) // a TLS 1.3 client's tickets ack, if any
			sEnd.mu.Unlock()
			buf := make([]byte, 64)
			drain := func() {
				t.Helper()
				for {
					n, err := server.Read(buf)
					if err == errWouldBlock {
						return
					}
					if err != nil || n > 0 {
						t.Fatalf("unexpected read %q, %v", buf[:n], err)
					}
				}
			}
			drain()
			if _, err := server.Read(buf); err != errWouldBlock {
				t.Fatalf("Read with nothing buffered: %v, want errWouldBlock itself", err)
			}
			msg := []byte("hello over a non-blocking transport")
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			record := sEnd.pending()
			// The record shown byte by byte: every Read before the last
			// byte would block, and nothing is lost.
			for i := 0; i < record-1; i++ {
				sEnd.show(1)
				if n, err := server.Read(buf); err != errWouldBlock || n != 0 {
					t.Fatalf("after %d of %d bytes: n=%d err=%v, want errWouldBlock", i+1, record, n, err)
				}
			}
			sEnd.show(1)
			n, err := server.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("after the whole record: %q, %v", buf[:n], err)
			}
			// Writing works after all those errors, both ways.
			if _, err := server.Write([]byte("reply")); err != nil {
				t.Fatalf("Write after would-block reads: %v", err)
			}
			got := make([]byte, 16)
			if n, err := client.Read(got); err != nil || string(got[:n]) != "reply" {
				t.Fatalf("client read %q, %v", got[:n], err)
			}
			// A second message, shown in two halves.
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			sEnd.show(sEnd.pending() / 2)
			if _, err := server.Read(buf); err != errWouldBlock {
				t.Fatalf("half a record: %v", err)
			}
			sEnd.show(-1)
			if n, err := server.Read(buf); err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("second message: %q, %v", buf[:n], err)
			}

			// A corrupted record is a permanent error: the connection fails
			// and stays failed.
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			sEnd.mu.Lock()
			sEnd.buf[len(sEnd.buf)-1] ^= 1
			sEnd.mu.Unlock()
			sEnd.show(-1)
			if _, err := server.Read(buf); err == nil || err == errWouldBlock {
				t.Fatalf("corrupted record: %v", err)
			}
			if _, err := server.Read(buf); err == nil || err == errWouldBlock {
				t.Fatalf("after a corrupted record: %v, want the same failure", err)
			}
		})
	}
}

// The shim's error is what crypto/tls checks: a net.Error, temporary and a
// timeout, compared by identity, and free to return.
func TestTLSWouldBlockError(t *testing.T) {
	var ne net.Error
	// crypto/tls asks Temporary() (deprecated for callers, still what it
	// checks): through the interface it declares, not net.Error's method.
	tmp, ok := errWouldBlock.(interface{ Temporary() bool })
	if !errors.As(errWouldBlock, &ne) || !ne.Timeout() || !ok || !tmp.Temporary() {
		t.Fatal("errWouldBlock is not a temporary timeout net.Error")
	}
	if errors.Is(errWouldBlock, io.EOF) {
		t.Fatal("errWouldBlock is EOF")
	}
	if n := testing.AllocsPerRun(100, func() { _ = error(wouldBlock{}) }); n != 0 {
		t.Fatalf("returning errWouldBlock allocates %v times", n)
	}
}

// The buffers crypto/tls keeps are found on the toolchain in use (if a Go
// release renames them, trimming turns itself off and this fails), are
// released after the handshake and once a connection has been idle for a
// scan, and the session goes on normally after each release: small and
// large messages, both ways.
func TestTLSTrim(t *testing.T) {
	if !tlsTrimOK() {
		t.Fatal("crypto/tls's input buffers (tls.Conn.rawInput, hand, input) are not found: tlstrim.go needs the new names")
	}
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) { o.MaxMessage = 1 << 20 })
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			tc, _ := tlsDial(t, s.url, cert.clientFor(v))
			stat := func() connStat {
				t.Helper()
				for _, st := range s.e.connStats(t) {
					if st.isTLS && st.remote == tc.LocalAddr().String() {
						return st
					}
				}
				t.Fatal("connection not found")
				return connStat{}
			}
			bufs := func() int { t.Helper(); return stat().tlsBufs }
			eventually(t, ioTimeout, "the handshake's buffers to be released", func() bool { return bufs() == 0 })
			p := rawPeerOnConn(t, tc, "rs", proto.MsgPack)
			w := newWAMP(t, p.mc, proto.MsgPack)
			w.join()
			proc := "com.trim.echo." + tls.VersionName(v)[4:]
			w.register(proc)
			big := make([]byte, 200<<10)
			for round := range 3 {
				if n := bufs(); n <= 0 && round == 0 {
					t.Fatalf("no buffer after traffic: %d", n)
				}
				s.e.scanNow(t) // this scan sees traffic since the last one
				s.e.scanNow(t) // this one sees none: released
				if n := bufs(); n != 0 {
					t.Fatalf("round %d: %d bytes of crypto/tls buffers kept by an idle connection", round, n)
				}
				// Small and large calls to itself, after the release. The
				// engine's own once-a-second scan releases buffers over
				// tlsTrimActive even while records come (tls.go, idle): one
				// that ran between the large echo and the look at the
				// buffers (a loaded machine, CI) released them rightly, so
				// the echo is made again, at most a few times.
				for try := 0; ; try++ {
					for _, arg := range [][]byte{[]byte("small"), big} {
						p.mc.(*rsClient).send(w.callMsg(w.nextReq(), proc, []any{arg}))
						inv := w.expect(proto.CodeInvocation)
						p.mc.(*rsClient).send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeYield, Request: inv.Request,
							Dict: emptyDict(t, proto.MsgPack), Args: inv.Args}))
						res := w.expect(proto.CodeResult)
						if got := args(t, res); len(got) != 1 || !bytes.Equal(got[0].([]byte), arg) {
							t.Fatalf("round %d: echo of %d bytes came back wrong", round, len(arg))
						}
					}
					st := stat()
					if st.tlsBufs >= 16<<10 {
						break
					}
					if !st.tlsTrimmed || try == 4 {
						t.Fatalf("round %d: %d bytes of buffers after a 200 KiB message (released by a scan: %v, %d tries)", round, st.tlsBufs, st.tlsTrimmed, try+1)
					}
				}
			}
		})
	}
}

// panicTB is a testing.TB for fixtures built outside a test (sync.Once).
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// fakeWire carries a TLS client's bytes to a fakeConn and back: the client
// writes into toServer, which the test moves to the fakeConn's input; the
// test moves what the router wrote into toClient, which the client reads.
type fakeWire struct {
	mu       sync.Mutex
	cond     sync.Cond
	toServer []byte
	toClient []byte
}

func newFakeWire() *fakeWire {
	w := &fakeWire{toServer: make([]byte, 0, 64<<10)}
	w.cond.L = &w.mu
	return w
}

func (w *fakeWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.toServer = append(w.toServer, p...)
	w.mu.Unlock()
	return len(p), nil
}

func (w *fakeWire) Read(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.toClient) == 0 {
		w.cond.Wait()
	}
	n := copy(p, w.toClient)
	w.toClient = w.toClient[n:]
	return n, nil
}

func (w *fakeWire) Close() error                     { return nil }
func (w *fakeWire) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (w *fakeWire) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (w *fakeWire) SetDeadline(time.Time) error      { return nil }
func (w *fakeWire) SetReadDeadline(time.Time) error  { return nil }
func (w *fakeWire) SetWriteDeadline(time.Time) error { return nil }

// pump moves the client's bytes to the router, runs its read callback and
// its tasks, and hands the router's output to the client.
func (w *fakeWire) pump(t testing.TB, h *handler, c *fakeConn, el *fakeLoop, toClient bool) {
	w.mu.Lock()
	b := w.toServer
	w.toServer = w.toServer[:0]
	c.in.write(b)
	w.mu.Unlock()
	if h.OnTraffic(c) != gnet.None {
		t.Fatal("closed")
	}
	el.run()
	if toClient && c.out.Len() > 0 {
		w.mu.Lock()
		w.toClient = append(w.toClient, c.out.Bytes()...)
		w.cond.Broadcast()
		w.mu.Unlock()
	}
	c.out.Reset()
}

// TestTLSTrafficAllocs: on a TLS connection, a read callback that carries
// a PUBLISH and a ping in one record — decrypted, routed, the pong
// encrypted and flushed — allocates once when warm: crypto/tls's own
// atLeastReader (24 bytes), which its readFromUntil allocates for every
// record read. Nothing of the loop's allocates (TestTrafficAllocs for
// plaintext: zero).
func TestTLSTrafficAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector sync.Pool drops items at random: crypto/tls's output buffers are reallocated")
	}
	fzMu.Lock()
	defer fzMu.Unlock()
	f := newFakeTLSJoined(t, t)
	defer f.c.gnetClose(io.EOF)
	h, c, el, w, tc := f.h, f.c, f.el, f.w, f.tc
	frames := append(rsFrame(0, []byte(`[16,1,{},"com.allocs",[1]]`)), rsFrame(1, []byte("p"))...)
	for range 50 { // warm the pools (crypto/tls's output buffers, the loop's)
		tc.Write(frames)
		w.pump(t, h, c, el, false)
	}
	allocs := testing.AllocsPerRun(200, func() {
		tc.Write(frames)
		w.pump(t, h, c, el, false)
	})
	if allocs != 1 {
		t.Fatalf("%v allocations per TLS callback, want 1 (crypto/tls's atLeastReader)", allocs)
	}
}

// fakeTLSJoined is a connection of connFixture's loop over a fakeWire,
// its TLS handshake made and a session joined to realm1 as a publisher
// over RawSocket JSON: the loop's TLS read path, driven by hand (w.pump).
// The caller holds fzMu and closes c.
type fakeTLSJoined struct {
	h  *handler
	c  *fakeConn
	el *fakeLoop
	w  *fakeWire
	tc *tls.Conn
}

// newFakeTLSJoined makes a fakeTLSJoined; ct is the fake connection's
// *testing.T (a benchmark passes one of its own).
func newFakeTLSJoined(tb testing.TB, ct *testing.T) *fakeTLSJoined {
	tb.Helper()
	e, el := connFixture()
	h := &handler{e: e}
	c := &fakeConn{t: ct, h: h, el: el, in: newInBuf(1 << 20), local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12}}
	h.OnOpen(fakeAccept(e, c))
	w := newFakeWire()
	tc := tls.Client(w, fzCert.clientFor(0))
	done := make(chan error, 1)
	go func() { done <- tc.Handshake() }()
	for deadline := time.Now().Add(ioTimeout); ; {
		w.pump(tb, h, c, el, true)
		select {
		case err := <-done:
			if err != nil {
				tb.Fatal(err)
			}
		case <-time.After(time.Millisecond):
			if time.Now().After(deadline) {
				tb.Fatal("handshake")
			}
			continue
		}
		break
	}
	cn := c.ctx.(*conn)
	eventually(tb, ioTimeout, "the loop to own the connection", func() bool { w.pump(tb, h, c, el, true); return cn.phase == phDetect })
	hello := []byte(`[1,"realm1",{"roles":{"publisher":{}}}]`)
	tc.Write(append(rsHandshake(proto.JSON, 15), rsFrame(0, hello)...))
	w.pump(tb, h, c, el, true)
	r := &rsClient{t: tb, c: &wireConn{tc}, br: bufio.NewReader(tc), ser: proto.JSON}
	r.expectHandshake()
	if m, err := r.readMsg(ioTimeout); err != nil || !bytes.HasPrefix(m, []byte("[2,")) {
		tb.Fatalf("no WELCOME: %q %v", m, err)
	}
	return &fakeTLSJoined{h, c, el, w, tc}
}

// wireConn adapts a tls.Conn for rsClient (deadlines are not needed).
type wireConn struct{ *tls.Conn }

func (w *wireConn) SetReadDeadline(time.Time) error  { return nil }
func (w *wireConn) SetWriteDeadline(time.Time) error { return nil }

// A TLS connection that dies while its handshake runs — here at
// handshake_timeout, with the handshake's goroutine past the ClientHello —
// stays dying: bytes that arrive before gnet closes it are not read (a
// Read on the loop would run the handshake there), the handshake's result
// does not revive it, and once closed nothing is left (the goroutine ends,
// the close is counted once, the accounting is back to zero).
func TestTLSHandshakeDiesMidway(t *testing.T) {
	fzMu.Lock()
	defer fzMu.Unlock()
	e, el := connFixture()
	h := &handler{e: e}
	before := e.Stats()
	workers := tlsWorkers()
	c := &fakeConn{t: t, h: h, el: el, in: newInBuf(1 << 20), local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12}}
	h.OnOpen(fakeAccept(e, c))
	// A failure below must not leave this connection in the shared
	// fixture (the fuzz seeds that run later check its accounting).
	defer func() { c.gnetClose(nil); el.run() }()
	w := newFakeWire()
	tc := tls.Client(w, fzCert.clientFor(0))
	go tc.Handshake()
	eventually(t, ioTimeout, "the ClientHello", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.toServer) > 0 })
	// The ClientHello: the goroutine starts. (Not pump: the server's
	// flight must stay in c.out until the connection is dying, and pump
	// would hand it to the client if the goroutine wrote it before pump's
	// el.run returned, as it does on a loaded machine.)
	w.mu.Lock()
	c.in.write(w.toServer)
	w.toServer = w.toServer[:0]
	w.mu.Unlock()
	if h.OnTraffic(c) != gnet.None {
		t.Fatal("closed")
	}
	eventually(t, 3*ioTimeout, "the server's flight", func() bool { el.run(); return c.out.Len() > 0 })
	// handshake_timeout: the scan marks it dying and asks gnet to close it.
	e.clock.Add(int64(time.Minute))
	ls := e.loopOf(el)
	ls.Execute(ls.scan)
	el.run()
	cn := c.ctx.(*conn)
	if cn.phase != phDead || !c.closeReq {
		t.Fatalf("phase %d, close requested %v", cn.phase, c.closeReq)
	}
	// The client's Finished arrives before gnet runs the close.
	w.mu.Lock()
	w.toClient = append(w.toClient, c.out.Bytes()...)
	w.cond.Broadcast()
	w.mu.Unlock()
	eventually(t, ioTimeout, "the client's Finished", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.toServer) > 0 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.mu.Lock()
		c.in.write(w.toServer)
		w.mu.Unlock()
		h.OnTraffic(c)
	}()
	select {
	case <-done:
	case <-time.After(ioTimeout):
		t.Fatal("OnTraffic blocked on a dying connection in its handshake")
	}
	time.Sleep(50 * time.Millisecond) // the handshake may finish meanwhile
	el.run()
	if cn.phase != phDead {
		t.Fatalf("revived: phase %d", cn.phase)
	}
	c.gnetClose(nil)
	el.run()
	eventually(t, ioTimeout, "the handshake's goroutine to end", func() bool { return tlsWorkers() == workers })
	after := e.Stats()
	if after.Closes[CloseHandshakeTimeout] != before.Closes[CloseHandshakeTimeout]+1 || after.Inbound != 0 ||
		after.TLSConns != before.TLSConns || after.TLSHandshakes != before.TLSHandshakes || after.Conns != before.Conns {
		t.Fatalf("after close: %+v", after)
	}
}

// The handshake's success, reported after the connection died, does not
// revive it.
func TestTLSHandshakeDoneAfterDeath(t *testing.T) {
	fzMu.Lock()
	defer fzMu.Unlock()
	e, el := connFixture()
	h := &handler{e: e}
	before := e.Stats()
	c := &fakeConn{t: t, h: h, el: el, in: newInBuf(1 << 20), local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12}}
	h.OnOpen(fakeAccept(e, c))
	w := newFakeWire()
	tc := tls.Client(w, fzCert.clientFor(0))
	go tc.Handshake()
	// Run the handshake but not the task that reports its end.
	cn := c.ctx.(*conn)
	finished := func() bool {
		hs := cn.tls.hs
		if hs == nil {
			return false
		}
		hs.mu.Lock()
		defer hs.mu.Unlock()
		return hs.done
	}
	for deadline := time.Now().Add(ioTimeout); !finished(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("handshake")
		}
		w.mu.Lock()
		c.in.write(w.toServer)
		w.toServer = w.toServer[:0]
		w.mu.Unlock()
		h.OnTraffic(c)
		el.mu.Lock()
		tasks := el.tasks
		el.tasks = nil
		el.mu.Unlock()
		for i, r := range tasks {
			if finished() { // the report may be among them: keep it and what follows
				el.mu.Lock()
				el.tasks = append(tasks[i:], el.tasks...)
				el.mu.Unlock()
				break
			}
			r.Run(context.Background())
		}
		if c.out.Len() > 0 {
			w.mu.Lock()
			w.toClient = append(w.toClient, c.out.Bytes()...)
			w.cond.Broadcast()
			w.mu.Unlock()
			c.out.Reset()
		}
	}
	// The report is queued (or about to be); the connection dies first.
	ls := e.loopOf(el)
	e.clock.Add(int64(time.Minute))
	ls.enter()
	ls.scan()
	ls.flush()
	ls.exit()
	if cn.phase != phDead {
		t.Fatalf("phase %d after handshake_timeout", cn.phase)
	}
	time.Sleep(50 * time.Millisecond) // the report is queued by now
	el.run()
	if cn.phase != phDead || cn.tls.ready {
		t.Fatalf("revived: phase %d, ready %v", cn.phase, cn.tls.ready)
	}
	c.gnetClose(nil)
	el.run()
	after := e.Stats()
	if after.Closes[CloseHandshakeTimeout] != before.Closes[CloseHandshakeTimeout]+1 || after.TLSConns != before.TLSConns {
		t.Fatalf("after close: %+v", after)
	}
}
