package load

import (
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// TLS on the tool's event loops, as the router does it (loop/tls.go): the
// handshake runs on the connecting goroutine over the socket; then the
// socket goes to a gnet loop and the session's records are decrypted and
// encrypted there, through a shim over gnet's buffers. So a TLS session
// costs the tool what it costs the router, and no goroutine per session.

// tlsLayer is a session's TLS state on the loop driver. It is the
// tls.Conn's transport: over the socket until the handshake is done, over
// the session's gnet connection afterwards.
type tlsLayer struct {
	tc    *tls.Conn
	raw   net.Conn  // the handshake's socket
	gc    gnet.Conn // after OnOpen
	left  int       // bytes of the record being handed over still to hand
	hdr   [5]byte   // handshake: the record header read from the socket
	hdrN  int       // handshake: bytes of hdr not yet handed over
	more  bool      // the last Read filled its buffer: tc may hold more plaintext
	ct    []byte    // ciphertext to write
	plain []byte    // decrypted input not yet consumed
}

// errNoRecord tells crypto/tls that no whole record is buffered yet: a
// temporary net.Error, which leaves the tls.Conn usable.
type errNoRecord struct{}

func (errNoRecord) Error() string   { return "no whole record buffered" }
func (errNoRecord) Timeout() bool   { return true }
func (errNoRecord) Temporary() bool { return true }

func (t *tlsLayer) Read(p []byte) (int, error) {
	if t.gc == nil {
		return t.readRaw(p)
	}
	if t.left == 0 {
		hdr, err := t.gc.Peek(5)
		if err != nil {
			return 0, errNoRecord{}
		}
		n := 5 + (int(hdr[3])<<8 | int(hdr[4]))
		if t.gc.InboundBuffered() < n {
			return 0, errNoRecord{}
		}
		t.left = n
	}
	k := min(len(p), t.left)
	if k == 0 {
		return 0, nil
	}
	b, err := t.gc.Peek(k)
	if err != nil {
		return 0, errNoRecord{}
	}
	copy(p, b)
	t.gc.Discard(k)
	t.left -= k
	return k, nil
}

// readRaw reads from the socket during the handshake, at most to the end
// of the current record: crypto/tls then stops at the end of the
// server's Finished, and what follows (TLS 1.3 session tickets) is left in
// the socket for the loop, starting at a record boundary.
func (t *tlsLayer) readRaw(p []byte) (int, error) {
	if t.left == 0 {
		if _, err := io.ReadFull(t.raw, t.hdr[:]); err != nil {
			return 0, err
		}
		t.left, t.hdrN = 5+(int(t.hdr[3])<<8|int(t.hdr[4])), 5
	}
	if t.hdrN > 0 {
		n := copy(p, t.hdr[5-t.hdrN:])
		t.hdrN -= n
		t.left -= n
		return n, nil
	}
	n, err := t.raw.Read(p[:min(len(p), t.left)])
	t.left -= n
	return n, err
}

func (t *tlsLayer) Write(p []byte) (int, error) {
	if t.gc == nil {
		return t.raw.Write(p)
	}
	t.ct = append(t.ct, p...)
	return len(p), nil
}

func (t *tlsLayer) Close() error                       { return nil }
func (t *tlsLayer) LocalAddr() net.Addr                { return t.raw.LocalAddr() }
func (t *tlsLayer) RemoteAddr() net.Addr               { return t.raw.RemoteAddr() }
func (t *tlsLayer) SetDeadline(d time.Time) error      { return t.raw.SetDeadline(d) }
func (t *tlsLayer) SetReadDeadline(d time.Time) error  { return t.raw.SetReadDeadline(d) }
func (t *tlsLayer) SetWriteDeadline(d time.Time) error { return t.raw.SetWriteDeadline(d) }

// handshakeTLS runs the session's TLS handshake over c, on the calling
// goroutine, before c goes to a loop.
func (s *sess) handshakeTLS(c net.Conn, timeout time.Duration) error {
	t := &tlsLayer{raw: c}
	t.tc = tls.Client(t, s.ep.tls)
	c.SetDeadline(time.Now().Add(timeout))
	if err := t.tc.Handshake(); err != nil {
		return err
	}
	c.SetDeadline(time.Time{})
	s.tls = t
	return nil
}

// recordReady reports whether a whole record is buffered (loop).
func (t *tlsLayer) recordReady() bool {
	if t.left > 0 {
		return true
	}
	hdr, err := t.gc.Peek(5)
	return err == nil && t.gc.InboundBuffered() >= 5+(int(hdr[3])<<8|int(hdr[4]))
}

// tlsInput decrypts every whole record gnet has buffered and hands the
// plaintext to the session (loop). Read is called only when it has
// something to return, as the router does it (a Read that finds nothing
// costs crypto/tls an allocation).
func (s *sess) tlsInput(now int64) {
	t := s.tls
	var buf [16 << 10]byte
	for t.more || t.recordReady() {
		n, err := t.tc.Read(buf[:])
		t.more = n == len(buf)
		t.plain = append(t.plain, buf[:n]...)
		if err != nil {
			if _, ok := err.(errNoRecord); !ok {
				s.fail(err)
			}
			break
		}
	}
	if len(t.plain) > 0 {
		used := s.input(t.plain, now)
		t.plain = t.plain[:copy(t.plain, t.plain[used:])]
		if len(t.plain) == 0 && cap(t.plain) > 64<<10 {
			t.plain = nil
		}
	}
}

// flushTLS encrypts the session's pending output and writes it (loop).
func (s *sess) flushTLS() {
	t := s.tls
	if len(s.out) > 0 {
		if _, err := t.tc.Write(s.out); err != nil {
			s.fail(err)
		}
		s.out = s.out[:0]
	}
	if len(t.ct) > 0 {
		t.gc.Write(t.ct)
		t.ct = t.ct[:0]
	}
}
