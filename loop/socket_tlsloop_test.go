package loop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// The TLS layer on the event loops (tls.go): handshakes off the loop on a
// bounded pool, records on the loop, one descriptor per connection.

// clientTLS returns the test certificate's client config for 127.0.0.1,
// limited to version (0: any).
func (c *testCert) clientFor(version uint16) *tls.Config {
	cc := c.client.Clone()
	cc.ServerName = "127.0.0.1"
	cc.MinVersion, cc.MaxVersion = version, version
	return cc
}

// tlsDial connects and completes a TLS handshake over raw.
func tlsDial(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, net.Conn) {
	t.Helper()
	raw := dialTCP(t, addr, 0)
	tc := tls.Client(raw, cfg)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return tc, raw
}

// dribbleConn writes one byte per write, with a pause, so that every byte
// of the TLS session arrives in its own segment. beforeLast, when set, runs
// before the last byte of the first write (the ClientHello).
type dribbleConn struct {
	net.Conn
	writes     int
	beforeLast func()
}

func (d *dribbleConn) Write(p []byte) (int, error) {
	d.writes++
	for i := range p {
		if i == len(p)-1 && d.writes == 1 && d.beforeLast != nil {
			d.beforeLast()
		}
		if _, err := d.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		time.Sleep(100 * time.Microsecond)
	}
	return len(p), nil
}

var tlsVersions = []uint16{tls.VersionTLS12, tls.VersionTLS13}

// A TLS session whose every byte arrives on its own — the ClientHello, the
// client's Finished, the transport handshake, the WAMP messages — works,
// and a ClientHello that is not whole yet costs no goroutine.
func TestTLSDribbledHandshake(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		// A byte per write with a pause: under a loaded machine's race
		// detector the WebSocket case took past the default 10 s.
		o.HandshakeTimeout = 4 * ioTimeout
	})
	for _, v := range tlsVersions {
		for _, transport := range []string{"rs", "ws"} {
			t.Run(tls.VersionName(v)+"/"+transport, func(t *testing.T) {
				raw := dialTCP(t, s.url, 0)
				d := &dribbleConn{Conn: raw}
				checked := false
				d.beforeLast = func() {
					// All of the ClientHello but its last byte is there:
					// still no handshake goroutine for this connection.
					time.Sleep(50 * time.Millisecond)
					for _, st := range s.e.connStats(t) {
						if st.remote == raw.LocalAddr().String() {
							checked = st.phase == phTLS && !st.handshaking
							if !checked {
								t.Errorf("partial ClientHello: phase %d, handshaking %v", st.phase, st.handshaking)
							}
						}
					}
				}
				tc := tls.Client(d, cert.clientFor(v))
				tc.SetDeadline(time.Now().Add(4 * ioTimeout))
				if err := tc.Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if !checked {
					t.Fatal("the connection was not seen with a partial ClientHello")
				}
				ser := proto.MsgPack
				p := rawPeerOnConn(t, tc, transport, ser)
				w := newWAMP(t, p.mc, ser)
				w.join()
				if m := w.call("wamp.session.count", nil); m.Type != proto.CodeResult {
					t.Fatalf("call: %v", m.Type)
				}
				if d.writes < 4 {
					t.Fatalf("%d writes", d.writes)
				}
			})
		}
	}
}

// stallConn passes the client's first write (the ClientHello) and swallows
// the rest: the server's handshake waits for a Finished that never comes.
type stallConn struct {
	net.Conn
	writes atomic.Int32
}

func (s *stallConn) Write(p []byte) (int, error) {
	if s.writes.Add(1) == 1 {
		return s.Conn.Write(p)
	}
	return len(p), nil
}

// tlsWorkers counts the goroutines running handshakes, in every engine of
// the process.
// poolWorkers returns the goroutines running p's handshakes (their
// stacks, for a failure's message): tlsWorkers counts every pool's of the
// process.
func poolWorkers(p *tlsPool) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			var out []string
			mark := fmt.Sprintf("loop.(*tlsPool).work(%p", p)
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, mark) {
					out = append(out, g)
				}
			}
			return out
		}
		buf = make([]byte, 2*len(buf))
	}
}

func tlsWorkers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "loop.(*tlsPool).work(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// A client that stalls mid-handshake — after a partial ClientHello, or
// after its ClientHello without sending its Finished — is closed at
// handshake_timeout, counted from accept, and leaves nothing behind: its
// goroutine ends, its bytes and its slot are released. (Not parallel: it
// counts the process's handshake goroutines.)
func TestTLSHandshakeStallTimesOut(t *testing.T) {
	cert := newTestCert(t)
	clk := newFakeClock()
	const timeout = 10 * time.Second
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.HandshakeTimeout = timeout
		o.Now = clk.Now
	})
	before := s.e.Stats()
	workers := tlsWorkers()
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			partial := dialTCP(t, s.url, 0)
			partial.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // 6 bytes of a 517-byte record
			raw := dialTCP(t, s.url, 0)
			sc := &stallConn{Conn: raw}
			go tls.Client(sc, cert.clientFor(v)).Handshake() // ends when the router closes raw
			eventually(t, ioTimeout, "the stalled handshake to wait on its goroutine", func() bool {
				st := s.e.Stats()
				return st.TLSHandshakes == 1 && st.TLSConns == 2
			})
			// One goroutine for the two: the partial ClientHello has none.
			if n := tlsWorkers() - workers; n != 1 {
				t.Fatalf("%d handshake goroutines, want 1", n)
			}
			s.tick(clk, timeout-time.Second)
			if !s.openAt(partial) || !s.openAt(raw) {
				t.Fatal("closed before handshake_timeout")
			}
			s.tick(clk, 2*time.Second)
			waitClosed(t, partial, ioTimeout)
			waitClosed(t, raw, ioTimeout)
			eventually(t, ioTimeout, "the handshake's goroutine and bytes to be released", func() bool {
				st := s.e.Stats()
				return st.TLSHandshakes == 0 && st.TLSHandshakesQueued == 0 && st.TLSConns == 0 && st.Conns == 0 &&
					st.Inbound == 0 && st.FDs == before.FDs && tlsWorkers() == workers
			})
		})
	}
	if got := s.e.Stats().Closes[CloseHandshakeTimeout] - before.Closes[CloseHandshakeTimeout]; got != 4 {
		t.Fatalf("%d handshake timeouts counted, want 4", got)
	}
}

// At most MaxTLSHandshakes handshakes run at once; the others wait, first
// come first served, and run as soon as a goroutine is free. Stalled
// handshakes therefore delay new ones (until handshake_timeout) but cannot
// make the router hold more goroutines.
func TestTLSHandshakePoolBounded(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.MaxTLSHandshakes = 2
		o.HandshakeTimeout = time.Minute
	})
	var stalled []net.Conn
	for range 5 {
		raw := dialTCP(t, s.url, 0)
		go tls.Client(&stallConn{Conn: raw}, cert.clientFor(tls.VersionTLS13)).Handshake()
		stalled = append(stalled, raw)
	}
	eventually(t, ioTimeout, "2 handshakes running, 3 waiting", func() bool {
		st := s.e.Stats()
		return st.TLSHandshakes == 2 && st.TLSHandshakesQueued == 3
	})
	// A good client waits behind them...
	done := make(chan error, 1)
	go func() {
		raw, err := net.Dial("tcp", s.url)
		if err != nil {
			done <- err
			return
		}
		defer raw.Close()
		tc := tls.Client(raw, cert.clientFor(0))
		tc.SetDeadline(time.Now().Add(3 * ioTimeout))
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		tc.Write(rsHandshake(proto.JSON, 15))
		var b [4]byte
		_, err = io.ReadFull(tc, b[:])
		done <- err
	}()
	eventually(t, ioTimeout, "the good client to wait", func() bool { return s.e.Stats().TLSHandshakesQueued == 4 })
	select {
	case err := <-done:
		t.Fatalf("served past the bound: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// ...and is served once the stalled clients go.
	for _, c := range stalled {
		c.Close()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * ioTimeout):
		t.Fatal("the waiting handshake never ran")
	}
	eventually(t, ioTimeout, "the pool to empty", func() bool {
		st := s.e.Stats()
		return st.TLSHandshakes == 0 && st.TLSHandshakesQueued == 0 && st.TLSConns == 0
	})
}

// logLines collects a logger's JSON lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logLines) find(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return s
		}
	}
	return ""
}

// A record whose header announces more than TLS allows gets the
// record_overflow alert and the connection is closed, before its body is
// waited for; a WAMP message over max_message is refused as on plaintext.
func TestTLSRecordTooLong(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) { o.MaxMessage = 64 << 10 })
	for _, v := range tlsVersions {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			before := s.e.Stats().Closes[CloseTLS]
			tc, raw := tlsDial(t, s.url, cert.clientFor(v))
			p := rawPeerOnConn(t, tc, "rs", proto.JSON)
			newWAMP(t, p.mc, proto.JSON).join()
			raw.Write([]byte{23, 3, 3, 0xff, 0xff, 1, 2, 3}) // 64 KiB announced; at most 18 KiB allowed
			tc.SetReadDeadline(time.Now().Add(ioTimeout))
			_, err := io.ReadAll(tc)
			if err == nil || !strings.Contains(err.Error(), "record overflow") {
				t.Fatalf("read after an oversized record: %v, want the record_overflow alert", err)
			}
			waitClosed(t, raw, ioTimeout)
			eventually(t, ioTimeout, "a TLS close counted", func() bool { return s.e.Stats().Closes[CloseTLS] == before+1 })
		})
	}
	t.Run("message over max_message", func(t *testing.T) {
		before := s.e.Stats().Closes
		tc, _ := tlsDial(t, s.url, cert.clientFor(0))
		r := rawPeerOnConn(t, tc, "rs", proto.JSON)
		newWAMP(t, r.mc, proto.JSON).join()
		tc.Write([]byte{0, 0x10, 0, 0}) // a 1 MiB frame announced
		waitClosed(t, tc, ioTimeout)
		tc2, _ := tlsDial(t, s.url, cert.clientFor(0))
		w := rawPeerOnConn(t, tc2, "ws", proto.JSON)
		newWAMP(t, w.mc, proto.JSON).join()
		tc2.Write(cliFrame(true, opText, make([]byte, 70<<10)))
		w.mc.(*wsClient).expectClose(1009)
		eventually(t, ioTimeout, "two message_too_big closes", func() bool {
			return s.e.Stats().Closes[CloseTooBig] == before[CloseTooBig]+2
		})
	})
}

// interceptConn is a client's transport that sends what is written, or
// captures it (seal): a test then sends ciphertext as it likes.
type interceptConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	buf []byte
}

func (i *interceptConn) Write(p []byte) (int, error) {
	i.mu.Lock()
	if i.on {
		i.buf = append(i.buf, p...)
		i.mu.Unlock()
		return len(p), nil
	}
	i.mu.Unlock()
	return i.Conn.Write(p)
}

// seal returns the records tc writes for b, without sending them.
func (i *interceptConn) seal(t testing.TB, tc *tls.Conn, b []byte) []byte {
	t.Helper()
	i.mu.Lock()
	i.on = true
	i.mu.Unlock()
	_, err := tc.Write(b)
	i.mu.Lock()
	out := i.buf
	i.on, i.buf = false, nil
	i.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tlsDialIntercept is tlsDial with an interceptConn under the client.
func tlsDialIntercept(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, *interceptConn) {
	t.Helper()
	ic := &interceptConn{Conn: dialTCP(t, addr, 0)}
	tc := tls.Client(ic, cfg)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return tc, ic
}

// A peer that resets in the middle of a record — during the handshake,
// with its goroutine waiting, or in a session — is closed and leaves
// nothing behind: no bytes counted, no goroutine, no session. (Not
// parallel: it counts the process's handshake goroutines.)
func TestTLSResetMidRecord(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, nil)
	workers := tlsWorkers()
	reset := func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	settled := func(t *testing.T) {
		t.Helper()
		eventually(t, ioTimeout, "everything released", func() bool {
			st := s.e.Stats()
			return st.TLSConns == 0 && st.Conns == 0 && st.Inbound == 0 && st.Outbound == 0 &&
				st.TLSHandshakes == 0 && s.r.SessionCount() == 0 && tlsWorkers() == workers
		})
	}
	t.Run("ClientHello", func(t *testing.T) {
		raw := dialTCP(t, s.url, 0)
		raw.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00})
		eventually(t, ioTimeout, "the connection", func() bool { return s.e.Stats().TLSConns == 1 })
		reset(raw)
		settled(t)
	})
	t.Run("handshake waiting", func(t *testing.T) {
		raw := dialTCP(t, s.url, 0)
		go tls.Client(&stallConn{Conn: raw}, cert.clientFor(0)).Handshake()
		eventually(t, ioTimeout, "the handshake to wait", func() bool { return s.e.Stats().TLSHandshakes == 1 })
		raw.Write([]byte{20, 3, 3, 0, 1}) // a record header without its byte
		reset(raw)
		settled(t)
	})
	for _, v := range tlsVersions {
		t.Run("session/"+tls.VersionName(v), func(t *testing.T) {
			tc, ic := tlsDialIntercept(t, s.url, cert.clientFor(v))
			p := rawPeerOnConn(t, tc, "rs", proto.MsgPack)
			w := newWAMP(t, p.mc, proto.MsgPack)
			w.join()
			// A 40 KiB CALL, three or more records, of which half is sent.
			msg := rsFrame(0, w.callMsg(w.nextReq(), "com.none", []any{make([]byte, 40<<10)}))
			ct := ic.seal(t, tc, msg)
			ic.Conn.Write(ct[:len(ct)/2])
			eventually(t, ioTimeout, "the partial message to be held", func() bool { return s.e.Stats().Inbound > 0 })
			reset(ic.Conn)
			settled(t)
		})
	}
}

// sClient runs `openssl s_client` against addr with args, its stdin a pipe
// the test writes to; the output collects stdout and stderr.
type sClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncBuffer
	done  chan struct{} // closed when the process has exited
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSClient(t *testing.T, addr string, args ...string) *sClient {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (.ci/setup installs it)")
	}
	cmd := exec.Command(bin, append([]string{"s_client", "-connect", addr, "-servername", "localhost"}, args...)...)
	c := &sClient{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitOutput waits for sub in the client's output.
func (c *sClient) waitOutput(t *testing.T, sub string) {
	t.Helper()
	eventually(t, ioTimeout, fmt.Sprintf("%q from openssl s_client", sub), func() bool {
		return strings.Contains(c.out.String(), sub)
	})
}

// The server never renegotiates: a TLS 1.2 client's renegotiation (a new
// ClientHello inside the session) is refused with an alert and the
// connection closed, which is counted as a TLS error. Before it, the
// session serves requests (openssl s_client as the client).
func TestTLSRenegotiationRefused(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	var logs logLines
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := startSClient(t, s.url, "-tls1_2")
	c.waitOutput(t, "Verify return code")
	io.WriteString(c.stdin, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	c.waitOutput(t, "HTTP/1.1 200")

	c = startSClient(t, s.url, "-tls1_2")
	c.waitOutput(t, "Verify return code")
	eventually(t, ioTimeout, "the handshake done", func() bool { return s.e.Stats().TLSHandshakes == 0 })
	before := s.e.Stats().Closes[CloseTLS]
	io.WriteString(c.stdin, "R\n") // s_client: renegotiate
	c.waitOutput(t, "RENEGOTIATING")
	select {
	case <-c.done:
	case <-time.After(ioTimeout):
		t.Fatalf("openssl still connected after asking to renegotiate:\n%s", c.out.String())
	}
	eventually(t, ioTimeout, "a TLS close counted", func() bool { return s.e.Stats().Closes[CloseTLS] == before+1 })
	if line := logs.find(`"reason":"tls_error"`); !strings.Contains(line, "unexpected") {
		t.Fatalf("close log line: %s", line)
	}
	if out := c.out.String(); !strings.Contains(out, "alert") {
		t.Fatalf("openssl saw no alert:\n%s", out)
	}
}

// TLS 1.3 KeyUpdate is handled on the loop: the client updates its keys
// and asks the router to update its own; the session goes on with both.
func TestTLSKeyUpdate(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, nil)
	c := startSClient(t, s.url, "-tls1_3")
	c.waitOutput(t, "Verify return code")
	io.WriteString(c.stdin, "K\n") // s_client: key update, update requested
	c.waitOutput(t, "KEYUPDATE")
	time.Sleep(100 * time.Millisecond)
	io.WriteString(c.stdin, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.waitOutput(t, "HTTP/1.1 200")
	if n := s.e.Stats().Closes[CloseTLS]; n != 0 {
		t.Fatalf("%d TLS errors", n)
	}
}

// TLS 1.0 and 1.1 are refused whatever the listener's config says; ALPN
// answers http/1.1 to clients that offer it, and nothing (rather than a
// failed handshake) to clients that offer only other protocols.
func TestTLSVersionAndALPN(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	old := cert.server.Clone()
	old.MinVersion = tls.VersionTLS10
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", TLS: old}, {Addr: "127.0.0.1:0", TLS: cert.server, Transport: RawSocketOnly}}
	})
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		raw := dialTCP(t, s.url, 0)
		tc := tls.Client(raw, cert.clientFor(v))
		tc.SetDeadline(time.Now().Add(ioTimeout))
		if err := tc.Handshake(); err == nil {
			t.Fatalf("%s accepted", tls.VersionName(v))
		}
	}
	for _, tc := range []struct {
		addr   string
		offer  []string
		expect string
	}{
		{s.url, []string{"h2", "http/1.1"}, "http/1.1"},
		{s.url, []string{"wamp.2.json"}, ""},
		{s.url, nil, ""},
		{s.e.Addrs()[1].String(), []string{"http/1.1"}, ""}, // RawSocket only: no ALPN
	} {
		cfg := cert.clientFor(0)
		cfg.NextProtos = tc.offer
		c, _ := tlsDial(t, tc.addr, cfg)
		if got := c.ConnectionState().NegotiatedProtocol; got != tc.expect {
			t.Fatalf("%v offered: ALPN %q, want %q", tc.offer, got, tc.expect)
		}
		r := rawPeerOnConn(t, c, "rs", proto.JSON)
		newWAMP(t, r.mc, proto.JSON).join()
	}
}

// fdsBut counts the process's open descriptors but the TCP sockets that
// have none of ports at either end: other tests' servers and clients,
// still closing (or still dialing) in the background, open and close
// those at any moment. Every other descriptor counts (pipes, eventfds,
// rings, this test's sockets).
func fdsBut(t testing.TB, ports ...int) int {
	t.Helper()
	return len(fdListBut(t, ports...))
}

// fdListBut is fdsBut's list: each descriptor's link (socket:[inode],
// pipe:[inode], a path). Event fds, epoll and io_uring instances
// (anon_inode:...) are left out: another test's engine starting or
// stopping in the background adds or drops them at any moment (the
// count was 101 once under load), and a connection's bridge, the defect
// the count looks for, would be a socket or a pipe.
func fdListBut(t testing.TB, ports ...int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	others := map[string]bool{} // socket inodes of TCP sockets without ports
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			port := func(addr string) int {
				i := strings.LastIndexByte(addr, ':')
				p, _ := strconv.ParseInt(addr[i+1:], 16, 32)
				return int(p)
			}
			lp, rp := port(fs[1]), port(fs[2])
			mine := false
			for _, p := range ports {
				mine = mine || lp == p || rp == p
			}
			if !mine {
				others["socket:["+fs[9]+"]"] = true
			}
		}
	}
	var list []string
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && (others[l] || strings.HasPrefix(l, "anon_inode:")) {
			continue
		}
		list = append(list, l)
	}
	return list
}

// A TLS connection holds one descriptor in the router: n sessions with
// their clients in the same process add 2n descriptors (the bridge of
// goroutine pairs took 3 per connection). (Not parallel: it counts the
// process's descriptors.)
func TestTLSOneDescriptorPerConnection(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, nil)
	const n = 50
	// Other tests' connections, closing or dialing in the background,
	// come and go at any moment (one made the count 101 on a loaded
	// machine): the count leaves out the TCP sockets that are not this
	// server's, and the base is taken once the rest holds still.
	var ports []int
	for _, a := range s.e.Addrs() {
		ports = append(ports, a.(*net.TCPAddr).Port)
	}
	fds := func() int { return fdsBut(t, ports...) }
	base := fds()
	eventually(t, ioTimeout, "the descriptor count to settle", func() bool {
		time.Sleep(100 * time.Millisecond)
		now := fds()
		defer func() { base = now }()
		return now == base
	})
	var conns []*tls.Conn
	for i := range n {
		tc, _ := tlsDial(t, s.url, cert.clientFor(0))
		tr := []string{"rs", "ws"}[i%2]
		r := rawPeerOnConn(t, tc, tr, proto.JSON)
		newWAMP(t, r.mc, proto.JSON).join()
		conns = append(conns, tc)
	}
	if got := fds() - base; got != 2*n {
		t.Fatalf("%d TLS sessions opened %d descriptors, want %d (one each side); open now: %q", n, got, 2*n, fdListBut(t, ports...))
	}
	if st := s.e.Stats(); st.FDs != n || st.TLSConns != n {
		t.Fatalf("stats: %d descriptors, %d TLS connections, want %d", st.FDs, st.TLSConns, n)
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, ioTimeout, "the descriptors to be closed", func() bool { return fds() == base })
}

// tlsStormSessions is how many TLS sessions TestTLSStorm opens at once
// (fewer under the race detector, whose crypto is ten times slower: there
// the storm looks for races, enough with 250, in each of loop's two runs;
// `make test` runs the test without it too, at full size).
func tlsStormSessions() int {
	if raceEnabled {
		return 250
	}
	return 5000
}

// 5,000 TLS sessions open at once — TCP connect, TLS handshake, RawSocket
// handshake, HELLO/WELCOME — from 625 loopback addresses (stormSource)
// while a plaintext caller keeps calling a plaintext callee: every session is served, and the calls go on
// throughout (the handshakes run off the loops, and compute on at most
// half the CPUs). The clients run in a child process (this test binary
// again, TestTLSStormClient) at the lowest CPU priority, as if they were
// elsewhere: in this process their own handshakes would compete with the
// router's loops for the Go scheduler. Not parallel: it holds thousands
// of descriptors.
func TestTLSStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	n := tlsStormSessions()
	cert := newTestCert(t)
	s := tlsServer(t, cert, true, func(o *Options, rc *route.Config) {
		o.HandshakeTimeout = 5 * time.Minute
		rc.Realms[0].Anonymous = true
	})
	plainAddr := s.e.Addrs()[1].String()
	callee := dialRS(t, plainAddr, proto.MsgPack, 15)
	cw := newWAMP(t, callee, proto.MsgPack)
	cw.join()
	cw.register("com.storm.echo")
	caller := dialRS(t, plainAddr, proto.MsgPack, 15)
	pw := newWAMP(t, caller, proto.MsgPack)
	pw.join()

	// The callee answers every INVOCATION; the caller calls in a loop
	// until the storm is over, and records the slowest call.
	stop := make(chan struct{})
	var calls, slowest atomic.Int64
	calleeDone := make(chan struct{})
	go func() {
		defer close(calleeDone)
		for {
			b, err := callee.readMsg(10 * time.Minute)
			if err != nil {
				return
			}
			if m, err := proto.Decode(proto.MsgPack, b); err == nil && m.Type == proto.CodeInvocation {
				callee.send(encodeMsg(t, proto.MsgPack, &proto.Message{Type: proto.CodeYield, Request: m.Request, Dict: emptyDict(t, proto.MsgPack)}))
			}
		}
	}()
	callerErr := make(chan error, 1)
	go func() {
		for req := uint64(100); ; req++ {
			select {
			case <-stop:
				callerErr <- nil
				return
			default:
			}
			start := time.Now()
			caller.c.SetWriteDeadline(time.Now().Add(ioTimeout))
			if _, err := caller.c.Write(rsFrame(0, pw.callMsg(req, "com.storm.echo", nil))); err != nil {
				callerErr <- err
				return
			}
			b, err := caller.readMsg(time.Minute)
			if err != nil {
				callerErr <- fmt.Errorf("call %d: %w", req, err)
				return
			}
			if m, err := proto.Decode(proto.MsgPack, b); err != nil || m.Type != proto.CodeResult {
				callerErr <- fmt.Errorf("call %d: %v %v", req, m, err)
				return
			}
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			calls.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	eventually(t, ioTimeout, "plaintext calls", func() bool { return calls.Load() > 10 })
	slowest.Store(0)

	// The clients: this test binary again, told where to connect.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	leaf := cert.server.Certificates[0].Certificate[0]
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSStormClient$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "EDGEWAMP_TLS_STORM="+fmt.Sprintf("%s,%d,%s", s.url, n, caFile))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	callsBefore := calls.Load()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	joined := fmt.Sprintf("STORM joined %d", n)
	for !strings.Contains(out.String(), joined) {
		select {
		case <-exited:
			t.Fatalf("storm client exited:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			t.Fatalf("storm not done after 5 minutes:\n%s", out.String())
		}
	}
	took := time.Since(start)
	close(stop)
	if err := <-callerErr; err != nil {
		t.Fatalf("plaintext caller during the storm: %v", err)
	}
	during := calls.Load() - callsBefore
	st := s.e.Stats()
	t.Logf("%d TLS sessions in %v; %d plaintext calls meanwhile, the slowest %v",
		n, took.Round(time.Millisecond), during, time.Duration(slowest.Load()).Round(time.Millisecond))
	if got := s.r.SessionCount(); got != n+2 {
		t.Fatalf("%d sessions, want %d", got, n+2)
	}
	if st.TLSConns != int64(n) || st.FDs != int64(n)+2 {
		t.Fatalf("%d TLS connections, %d descriptors", st.TLSConns, st.FDs)
	}
	if st.Closes[CloseTLSPerAddress] != 0 {
		t.Fatalf("%d connections refused for max_tls_handshakes_per_address", st.Closes[CloseTLSPerAddress])
	}
	eventually(t, ioTimeout, "the per-address counts released", func() bool {
		_, sources := s.e.tlsSrcCount("127.0.0.1")
		return sources == 0
	})
	if during < 10 || time.Duration(slowest.Load()) > 5*time.Second {
		t.Fatalf("plaintext routing starved: %d calls during the storm, the slowest %v", during, time.Duration(slowest.Load()))
	}
	stdin.Close() // the client closes its sessions and exits
	eventually(t, time.Minute, "the TLS sessions to close", func() bool { return s.e.Stats().TLSConns == 0 })
	caller.c.Close()
	callee.c.Close()
	<-calleeDone
}

// stormSource is the loopback address TestTLSStormClient's client i
// connects from: 127.1.0.0/16, eight clients each.
func stormSource(i int) net.IP {
	return net.IPv4(127, 1, byte(i/8>>8), byte(i/8))
}

// TestTLSStormClient is TestTLSStorm's client process: it opens the
// sessions EDGEWAMP_TLS_STORM=addr,n,ca.pem says, all at once, prints
// "STORM joined n", and closes them when its stdin closes.
func TestTLSStormClient(t *testing.T) {
	spec := os.Getenv("EDGEWAMP_TLS_STORM")
	if spec == "" {
		t.Skip("run by TestTLSStorm")
	}
	parts := strings.Split(spec, ",")
	addr, caFile := parts[0], parts[2]
	n, _ := strconv.Atoi(parts[1])
	syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19)
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ccfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	hello := helloMsg(t, proto.MsgPack)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			// Eight clients per source address, as if from many hosts:
			// the router's default max_tls_handshakes_per_address (16)
			// stays in force, and its table holds hundreds of sources
			// at once.
			d := net.Dialer{Timeout: time.Minute, LocalAddr: &net.TCPAddr{IP: stormSource(i)}}
			var raw net.Conn
			var err error
			for try := 0; ; try++ { // a full accept queue drops SYNs: the kernel retries, and so does this
				if raw, err = d.Dial("tcp", addr); err == nil || try == 3 {
					break
				}
			}
			if err != nil {
				errs <- err
				return
			}
			conns[i] = raw
			tc := tls.Client(raw, ccfg)
			tc.SetDeadline(time.Now().Add(5 * time.Minute))
			if err := tc.Handshake(); err != nil {
				errs <- fmt.Errorf("handshake: %w", err)
				return
			}
			if _, err := tc.Write(append(rsHandshake(proto.MsgPack, 15), rsFrame(0, hello)...)); err != nil {
				errs <- err
				return
			}
			r := &rsClient{t: t, c: tc, br: bufio.NewReaderSize(tc, 512), ser: proto.MsgPack}
			var hs [4]byte
			if _, err := io.ReadFull(r.br, hs[:]); err != nil {
				errs <- fmt.Errorf("rawsocket handshake: %w", err)
				return
			}
			if b, err := r.readMsg(5 * time.Minute); err != nil || len(b) < 2 || b[1] != byte(proto.CodeWelcome) {
				errs <- fmt.Errorf("no WELCOME: %v", err)
			}
		}()
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Printf("STORM error: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("STORM joined %d\n", n)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// TLS listeners dedicated to one transport serve it and refuse the other
// after the handshake, as plaintext ones do (the sniffing port is
// TestSocketTLS's).
func TestTLSDedicatedPorts(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", TLS: cert.server, Transport: WebSocketOnly},
			{Addr: "127.0.0.1:0", TLS: cert.server, Transport: RawSocketOnly}}
	})
	wsAddr, rsAddr := s.e.Addrs()[0].String(), s.e.Addrs()[1].String()
	for _, c := range []struct {
		addr, serves, refuses string
	}{{wsAddr, "ws", "rs"}, {rsAddr, "rs", "ws"}} {
		tc, _ := tlsDial(t, c.addr, cert.clientFor(0))
		p := rawPeerOnConn(t, tc, c.serves, proto.CBOR)
		newWAMP(t, p.mc, proto.CBOR).join()
		before := s.e.Stats().Closes[CloseNotWAMP]
		tc2, _ := tlsDial(t, c.addr, cert.clientFor(0))
		if c.refuses == "rs" {
			tc2.Write(rsHandshake(proto.JSON, 15))
		} else {
			tc2.Write(wsUpgradeRequest("/ws", "wamp.2.json"))
		}
		if got := waitClosed(t, tc2, ioTimeout); len(got) != 0 {
			t.Fatalf("%s on the %s port answered %q", c.refuses, c.serves, got)
		}
		eventually(t, ioTimeout, "a not_wamp close", func() bool { return s.e.Stats().Closes[CloseNotWAMP] == before+1 })
	}
}

// Session resumption works through the shim (TLS 1.3 tickets, which the
// router sends during the handshake, and TLS 1.2 ones), with and without
// ALPN: a reconnecting device skips the certificate signature.
func TestTLSResumption(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, nil)
	for _, v := range tlsVersions {
		for _, alpn := range [][]string{nil, {"http/1.1"}} {
			cfg := cert.clientFor(v)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			cfg.NextProtos = alpn
			for i := range 2 {
				tc, _ := tlsDial(t, s.url, cfg)
				// A session, so that a TLS 1.3 client reads its ticket.
				r := rawPeerOnConn(t, tc, "rs", proto.JSON)
				newWAMP(t, r.mc, proto.JSON).join()
				if got := tc.ConnectionState().DidResume; got != (i == 1) {
					t.Fatalf("%s, ALPN %v, connection %d: resumed %v", tls.VersionName(v), alpn, i, got)
				}
				tc.Close()
			}
		}
	}
}
