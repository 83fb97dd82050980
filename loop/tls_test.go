package loop

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
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
	if !errors.As(errWouldBlock, &ne) || !ne.Timeout() || !ne.Temporary() {
		t.Fatal("errWouldBlock is not a temporary timeout net.Error")
	}
	if errors.Is(errWouldBlock, io.EOF) {
		t.Fatal("errWouldBlock is EOF")
	}
	if n := testing.AllocsPerRun(100, func() { _ = error(wouldBlock{}) }); n != 0 {
		t.Fatalf("returning errWouldBlock allocates %v times", n)
	}
}
