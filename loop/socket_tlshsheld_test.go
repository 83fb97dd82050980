package loop

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// helloCapture is a client transport that keeps the client's first
// flight (its ClientHello) and fails the handshake there.
type helloCapture struct {
	net.Conn
	hello []byte
}

func (c *helloCapture) Write(p []byte) (int, error) {
	c.hello = append(c.hello, p...)
	return 0, errors.New("captured")
}

// tls12Hello returns a Go client's TLS 1.2 ClientHello, as records.
func tls12Hello(t testing.TB, cert *testCert) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cc := cert.clientFor(tls.VersionTLS12)
	c := &helloCapture{Conn: a}
	tls.Client(c, cc).Handshake()
	if len(c.hello) < recordHeaderLen || c.hello[0] != recordTypeHandshake {
		t.Fatalf("captured %x", c.hello)
	}
	return c.hello
}

// handshakeRecords returns n bytes of a handshake message of type typ that
// announces length bytes, in plaintext handshake records of 16 KiB at most.
func handshakeRecords(typ byte, length, n int) []byte {
	msg := append([]byte{typ, byte(length >> 16), byte(length >> 8), byte(length)}, make([]byte, n-4)...)
	var out []byte
	for len(msg) > 0 {
		k := min(len(msg), maxPlaintext)
		out = append(out, recordTypeHandshake, 3, 3, byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// A TLS 1.2 client that sent its ClientHello and then most of a
// ClientKeyExchange announcing 65,520 bytes, and stalled, had crypto/tls
// accumulate the message (c.hand, up to 64 KiB) and keep the record
// buffer, and the handshake's input buffer kept the array of what was
// read: ~105 KiB a connection (the review's probe: 16 connections, heap
// +1.68 MB, max_inbound_total counting 196,752 bytes), ~27 MiB at the 256
// handshake goroutines for handshake_timeout, counted nowhere. Now a
// handshake reads at most tlsHandshakeReadMax bytes of the client's
// flights (closed past it, tls_error), and what it holds is counted in
// max_inbound_total: the capacity of its input buffer and the bytes
// crypto/tls read.
func TestTLSStalledHandshakeHoldIsBoundedAndCounted(t *testing.T) {
	cert := newTestCert(t)
	var logs logLines
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.HandshakeTimeout = time.Minute
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	hello := tls12Hello(t, cert)
	const conns = 16
	open := func(extra []byte) []net.Conn {
		cs := make([]net.Conn, conns)
		for i := range cs {
			c := dialTCP(t, s.url, 0)
			if _, err := c.Write(hello); err != nil {
				t.Fatal(err)
			}
			cs[i] = c
		}
		eventually(t, ioTimeout, "the handshakes started", func() bool {
			return s.e.Stats().TLSHandshakes >= conns
		})
		time.Sleep(200 * time.Millisecond) // their first flights written
		// A record at a time, as a client on a slow link sends them: the
		// handshake reads each before the next comes.
		for rec := extra; len(rec) > 0; {
			n := recordHeaderLen + (int(rec[3])<<8 | int(rec[4]))
			for _, c := range cs {
				c.Write(rec[:n]) // a connection closed fails: judged below
			}
			rec = rec[n:]
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // read by the router
		return cs
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
		eventually(t, ioTimeout, "the connections gone", func() bool {
			st := s.e.Stats()
			return s.e.tlsCount() == 0 && st.Inbound == 0
		})
	}

	base := heapNow()
	cs := open(nil)
	helloHeap := heapNow() - base
	helloCount := s.e.Stats().Inbound
	closeAll(cs)

	// The review's probe: 60 KiB of a ClientKeyExchange announcing 65,520.
	base = heapNow()
	cs = open(handshakeRecords(16, 65520, 60<<10))
	heap := heapNow() - base
	st := s.e.Stats()
	var closed int
	for _, c := range cs {
		if ok, _ := closedWithin(c, 100*time.Millisecond); ok {
			closed++
		}
	}
	t.Logf("%d stalled after their ClientHello: heap +%d B, counted %d B; after 60 KiB of a ClientKeyExchange: heap +%d B, counted %d B, %d closed",
		conns, helloHeap, helloCount, heap, st.Inbound, closed)
	if closed != conns {
		if held := heap - helloHeap; held > st.Inbound {
			t.Fatalf("%d connections with 60 KiB of a ClientKeyExchange, %d closed: they hold %d B more heap than after their ClientHello (%d B each), the inbound budget counts %d B",
				conns, closed, held, held/conns, st.Inbound)
		}
	} else if line := logs.find("handshake longer"); line == "" {
		t.Fatal("no close log line naming the handshake input")
	}
	closeAll(cs)

	// Within the bound, stalled: counted.
	base = heapNow()
	cs = open(handshakeRecords(16, 65520, tlsHandshakeReadMax-len(hello)-1024))
	heap = heapNow() - base
	st = s.e.Stats()
	t.Logf("%d stalled within the bound: heap +%d B, counted %d B", conns, heap, st.Inbound)
	if held := heap - helloHeap; held > st.Inbound {
		t.Fatalf("%d stalled handshakes hold %d B more heap than after their ClientHello (%d B each), the inbound budget counts %d B",
			conns, held, held/conns, st.Inbound)
	}
	for _, c := range cs {
		if ok, _ := closedWithin(c, 10*time.Millisecond); ok {
			t.Fatal("a handshake within the bound closed")
		}
	}
	closeAll(cs)
}
