package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// transport carries whole WAMP messages. readMsg is called only by the
// session's reader goroutine (and by Dial before it starts); writeMsg and
// close are safe for concurrent use.
type transport interface {
	// readMsg returns the next message. The slice is valid until the next
	// call. Transport-level control frames (WebSocket ping/close, RawSocket
	// PING) are answered inside.
	readMsg() ([]byte, error)
	// writeMsg sends one message. p may be modified (masked in place).
	// It returns ErrMessageTooLarge, before writing anything, for a message
	// over the peer's limit.
	writeMsg(p []byte) error
	// setReadDeadline bounds the reads of the join.
	setReadDeadline(t time.Time) error
	// close closes the connection. When graceful, it first tries to say
	// goodbye at the transport level (WebSocket close frame).
	close(graceful bool) error
	// ping sends a transport-level ping (WebSocket ping, RawSocket PING),
	// for the keepalive.
	ping() error
	// lastRead returns when bytes last arrived from the router (nanos),
	// when tracking is on (keepalive).
	lastRead() int64
	// release drops the read buffer when a message larger than
	// keepBufCap left it so; called by the reader once done with the
	// message readMsg returned.
	release()
	// moving returns, when tracking is on, when the connection last took
	// a chunk of a write of more than writeChunk bytes with more of it to
	// go (nanos); 0 before any. Kept once the write is done: the
	// keepalive, which looks at it when a bound falls due, not at every
	// chunk, missed the last ones.
	moving() int64
	// received returns how many bytes have arrived from the router,
	// when tracking is on.
	received() int64
	// lastPong returns when the router's answer to the last ping, its
	// payload echoed, arrived (nanos), and whether it has.
	lastPong() (int64, bool)
}

// stream is what both transports share: the connection, a buffered reader
// owned by the reader goroutine, and a write lock.
type stream struct {
	conn         net.Conn // Static.
	writeTimeout time.Duration

	// Owned by the reader goroutine.
	br  *bufio.Reader
	buf msgBuf

	track bool             // Static: record when bytes arrive and writes move (keepalive)
	now   func() time.Time // Static: Config.now, the clock of rx and wprog (time.Now when nil)
	rx    atomic.Int64     // when the last read that returned bytes did (nanos), when track
	rxn   atomic.Int64     // the bytes those reads returned, when track
	wprog atomic.Int64     // see moving
	pings atomic.Uint64    // the number of the last ping, its payload (pingPayload)
	pongs atomic.Uint64    // the number of the last ping answered
	pong  atomic.Int64     // when that answer came (nanos)

	wmu sync.Mutex // Guards writes to conn, so that frames never interleave.
}

func (s *stream) lastRead() int64 { return s.rx.Load() }

func (s *stream) moving() int64 { return s.wprog.Load() }

func (s *stream) received() int64 { return s.rxn.Load() }

func (s *stream) lastPong() (int64, bool) {
	if s.pongs.Load() != s.pings.Load() {
		return 0, false
	}
	return s.pong.Load(), true
}

// pingPayload numbers the next ping: its payload, 8 bytes the router's
// pong echoes, so that only the answer to it counts (an unsolicited pong,
// which a WebSocket peer may send as a heartbeat, tells nothing of
// whether the router reads).
func (s *stream) pingPayload() []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), s.pings.Add(1))
}

// ponged records a pong from the router when it answers the last ping.
// Called by the reader goroutine.
func (s *stream) ponged(p []byte) {
	if n := s.pings.Load(); len(p) == 8 && binary.BigEndian.Uint64(p) == n {
		s.pong.Store(nanos(s.now))
		s.pongs.Store(n)
	}
}

func (s *stream) release() { s.buf.release() }

// reader returns the buffered reader the transport reads conn through.
// pre, when not nil, is a buffered reader over conn that the transport's
// handshake left, possibly holding bytes the router sent right behind its
// answer. With tracking on, every read from conn that returns bytes is
// recorded, under the buffer, so that the keepalive sees the router alive
// while a large message arrives slowly, not only when a frame starts.
func (s *stream) reader(conn net.Conn, pre *bufio.Reader) *bufio.Reader {
	if !s.track {
		if pre != nil {
			return pre
		}
		return bufio.NewReader(conn)
	}
	var r io.Reader = arrivals{conn, &s.rx, &s.rxn, s.now}
	if pre != nil && pre.Buffered() > 0 {
		b, _ := pre.Peek(pre.Buffered()) // pre is not read again
		r = io.MultiReader(bytes.NewReader(b), r)
	}
	return bufio.NewReader(r)
}

// arrivals records when a read from r last returned bytes (nanos), and
// how many it returned in all.
type arrivals struct {
	r   io.Reader
	rx  *atomic.Int64
	rxn *atomic.Int64
	now func() time.Time
}

func (a arrivals) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.rx.Store(nanos(a.now))
		a.rxn.Add(int64(n))
	}
	return n, err
}

// write writes bufs under the write lock with a write deadline.
func (s *stream) write(bufs ...[]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(bufs...)
}

func (s *stream) writeLocked(bufs ...[]byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return err
	}
	if !s.track {
		nb := net.Buffers(bufs)
		_, err := nb.WriteTo(s.conn)
		return err
	}
	// With the keepalive on, the write goes out writeChunk bytes at a
	// time, and while more is to go each chunk the connection took is
	// recorded: the keepalive takes it for the router's answer, and so
	// tells a large write the router takes, slowly, from one stuck on a
	// dead link.
	for len(bufs) > 0 {
		var part net.Buffers // WriteTo consumes it
		for n := 0; len(bufs) > 0 && n < writeChunk; {
			b := bufs[0]
			if k := writeChunk - n; len(b) > k {
				part, bufs[0], n = append(part, b[:k]), b[k:], writeChunk
			} else {
				part, bufs, n = append(part, b), bufs[1:], n+len(b)
			}
		}
		if _, err := part.WriteTo(s.conn); err != nil {
			return err
		}
		if len(bufs) > 0 {
			now := clockNow(s.now)
			s.wprog.Store(nanosAt(now))
			// WriteTimeout bounds each chunk, the time the link takes
			// nothing, not the whole write: a large message over a slow
			// link that takes it steadily (16 MiB at 1 Mbit/s, 134 s)
			// was cut at WriteTimeout, mid-message, though the
			// keepalive took it for the live link it is.
			if err := s.conn.SetWriteDeadline(now.Add(s.writeTimeout)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeChunk is how many bytes a write gives the connection at a time
// when the keepalive is on. The keepalive hears the router through a
// large write once per chunk the router takes: a link that takes less than
// writeChunk bytes per KeepAliveTimeout, while the router sends nothing,
// looks dead.
const writeChunk = 16 << 10

// msgBuf holds the message being read. It grows as bytes arrive rather
// than trusting a declared length for allocation (declared lengths are
// already bounded by the receive limit, but a peer could declare the limit
// and then send nothing), and it is dropped once a rare huge message is
// handled (release) so that it does not stay pinned.
type msgBuf struct {
	b []byte
}

const (
	readChunk  = 64 << 10
	keepBufCap = 4 << 20
)

// start returns the empty buffer for a new message.
func (m *msgBuf) start() []byte {
	if cap(m.b) > keepBufCap {
		m.b = nil
	}
	return m.b[:0]
}

// release drops the buffer when it is larger than keepBufCap.
func (m *msgBuf) release() {
	if cap(m.b) > keepBufCap {
		m.b = nil
	}
}

// grow makes room for at least want more bytes.
func grow(b []byte, want int) []byte {
	if cap(b)-len(b) >= want {
		return b
	}
	nb := make([]byte, len(b), len(b)+max(want, cap(b)))
	copy(nb, b)
	return nb
}

// readN reads exactly n bytes from r.
func (m *msgBuf) readN(r io.Reader, n int) ([]byte, error) {
	b := m.start()
	for len(b) < n {
		want := min(n-len(b), readChunk)
		b = grow(b, want)
		k, err := io.ReadFull(r, b[len(b):len(b)+want])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	m.b = b
	return b, nil
}

// readAll reads r to io.EOF, starting from a size hint.
func (m *msgBuf) readAll(r io.Reader, hint int64) ([]byte, error) {
	b := grow(m.start(), int(min(hint, readChunk)))
	for {
		if len(b) == cap(b) {
			b = grow(b, readChunk)
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err == io.EOF {
			m.b = b
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// dialTCP connects to addr, with TLS when cfg is not nil; the TLS handshake
// runs within ctx.
func dialTCP(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg == nil {
		return c, nil
	}
	tc := tls.Client(c, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// dialRefusal is a failed dial that what answers at the URL answered, at
// the transport level, as it will at each attempt until the router or the
// configuration is changed: an HTTP answer other than the WebSocket
// upgrade (a wrong path's 404), another subprotocol, a RawSocket
// handshake refused or malformed. A Client's reconnect loop logs it at
// WARN once a streak (dialRefused), as a join the router refuses: it was
// INFO at each attempt, as a router that is down.
type dialRefusal struct{ msg string }

func (e *dialRefusal) Error() string { return e.msg }

func refusedf(format string, args ...any) error {
	return &dialRefusal{fmt.Sprintf(format, args...)}
}

// dialRefused reports whether err, a failed dial's, is a dialRefusal or a
// router certificate the TLS configuration does not verify (expired, of
// another host, of an authority not trusted), which the next attempt
// meets again too.
func dialRefused(err error) bool {
	_, refused := errors.AsType[*dialRefusal](err)
	_, untrusted := errors.AsType[*tls.CertificateVerificationError](err)
	return refused || untrusted
}

// dialRefusalKey tells one dial refusal from another in a Client's streak
// (refusalLog): its text, but for a router certificate out of its validity
// period, whose text holds the time of the attempt ("current time ... is
// after ..."): every attempt a second or more after the last was a new
// refusal, logged at WARN. That one is told by the certificate instead.
func dialRefusalKey(err error) string {
	if ce, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ce.Reason == x509.Expired && ce.Cert != nil {
		return "expired\x00" + ce.Cert.Subject.String() + "\x00" + ce.Cert.NotBefore.String() + "\x00" + ce.Cert.NotAfter.String()
	}
	return err.Error()
}
