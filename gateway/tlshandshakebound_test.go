package gateway

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTLSHandshakeInputBounded: over gateway.tls a client's handshake
// may send what crypto/tls accepts, a handshake message of up to 64 KiB
// and, once the versions are agreed, a Certificate message of up to
// 256 KiB that nobody asked for, which crypto/tls keeps until it is whole
// (its record buffer besides), for the handshake's deadline
// (read_header_timeout) and past it as long as its client keeps sending.
// Here a TLS 1.2 client sends its ClientHello, reads the server's flight
// and sends 250,000 bytes of a Certificate message: the connection must be
// closed once the client's flights pass what a handshake needs (the event
// loops' TLS listeners close theirs past 32 KiB), long before the header
// timeout. Before, it stayed open, holding the message (64 such
// connections: tens of MB of heap, 10,000 connections (max_connections) up
// to ~5 GB).
func TestTLSHandshakeInputBounded(t *testing.T) {
	laneFree(t)
	e, hc := tlsEnv(t, func(o *Options) { o.Limits.ReadHeaderTimeout = time.Minute })
	addr := e.gw.Addr().String()
	// Clients' requests with heads near max_header (16 KiB), over
	// HTTP/2 and HTTP/1.1, are served.
	pool := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}}
	t.Cleanup(h1.CloseIdleConnections)
	for _, c := range []*http.Client{hc, h1} {
		req, _ := http.NewRequest("GET", "https://"+addr+"/healthz", nil)
		req.Header.Set("X-Pad", strings.Repeat("p", 15000))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s request with a 15,000-byte header: %d", resp.Proto, resp.StatusCode)
		}
	}
	hello := clientHello12(t)

	const conns = 64
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cs := make([]net.Conn, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- stallInCertificate(c, hello)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d connections each sent 250,000 bytes of a Certificate message: heap in use %+d KiB",
		conns, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)

	// Each connection must be closed by the gateway, at once: read what
	// it answers (an alert, or nothing) until the end.
	var open atomic.Int32
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if open := open.Load(); open > 0 {
		t.Fatalf("%d of %d connections still open 5 s after sending 250,000 bytes of a Certificate message in their handshake (read_header_timeout 1m): the gateway keeps reading a handshake past what one needs", open, conns)
	}
}

// clientHello12 returns the record(s) of a Go client's TLS 1.2 ClientHello.
func clientHello12(t *testing.T) []byte {
	t.Helper()
	cc := &captureConn{}
	tc := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	tc.SetDeadline(time.Now().Add(time.Second))
	tc.Handshake() // fails: the capture reads nothing
	if len(cc.out) < 5 || cc.out[0] != 22 {
		t.Fatalf("no ClientHello captured: %x", cc.out)
	}
	return cc.out
}

// captureConn keeps what is written to it; its reads fail.
type captureConn struct {
	net.Conn
	out []byte
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	return len(p), nil
}
func (c *captureConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// stallInCertificate sends hello, reads the server's flight up to its
// ServerHelloDone, then sends 250,000 bytes of a Certificate message
// announcing 262,000 (under crypto/tls's 256 KiB bound) in handshake
// records, and stops there. A write the server refused (it closed) ends
// it early without an error.
func stallInCertificate(c net.Conn, hello []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(hello); err != nil {
		return err
	}
	// The server's flight: plaintext handshake records, until a
	// ServerHelloDone (type 14, empty) ends one.
	var hand []byte
	for done := false; !done; {
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return err
		}
		if hdr[0] != 22 {
			return fmt.Errorf("the server's flight holds a record of type %d", hdr[0])
		}
		hand = append(hand, body...)
		for len(hand) >= 4 {
			n := 4 + (int(hand[1])<<16 | int(hand[2])<<8 | int(hand[3]))
			if len(hand) < n {
				break
			}
			done = done || hand[0] == 14
			hand = hand[n:]
		}
	}
	msg := append([]byte{11, 0, 0, 0}, bytes.Repeat([]byte{0}, 250000-4)...)
	msg[1], msg[2], msg[3] = 262000>>16, 262000>>8&0xff, 262000&0xff
	for len(msg) > 0 {
		n := min(len(msg), 16384)
		rec := append([]byte{22, 3, 3, byte(n >> 8), byte(n)}, msg[:n]...)
		if _, err := c.Write(rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			return nil // closed by the server
		}
		msg = msg[n:]
	}
	return nil
}
