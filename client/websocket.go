package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/edgewamp/edgewamp/proto"
)

// WebSocket (WAMP §Transports: WebSocket; RFC 6455). gobwas/ws dials and
// upgrades; frames are read with its wsutil.Reader (which bounds each
// message by MaxMessageSize before reading it) and written here, one frame
// per WAMP message, masked as RFC 6455 §5.3 requires of a client.
//
// Batched subprotocols (WAMP Advanced Profile, §Batched WebSocket): with
// wamp.2.json.batched every message in a frame is followed by 0x1E; with
// wamp.2.msgpack.batched and wamp.2.cbor.batched every message is preceded
// by its length as a big-endian uint32. The client reads batches of any
// size and writes batches of one.
type webSocket struct {
	stream
	op      ws.OpCode        // Static: text for JSON, binary otherwise.
	batched bool             // Static.
	ser     proto.Serializer // Static.
	maxSend int              // Static: the longest frame payload sent (Config.MaxOutgoing; 0: no bound).

	// Owned by the reader goroutine.
	r    *wsutil.Reader
	rest []byte // unread messages of a batched frame
	ctl  [ws.MaxControlFramePayloadSize]byte
}

func dialWebSocket(ctx context.Context, ep endpoint, cfg *Config) (*webSocket, error) {
	sub := cfg.Serializer.Subprotocol(cfg.Batched)
	var lc *upgradeConn
	d := ws.Dialer{Protocols: []string{sub}, TLSConfig: cfg.TLS, WrapConn: func(c net.Conn) net.Conn {
		lc = &upgradeConn{Conn: c}
		lc.left.Store(maxUpgradeResponse)
		return lc
	}}
	conn, br, hs, err := d.Dial(ctx, ep.url)
	if err != nil {
		if lc != nil && ctx.Err() == nil {
			if said := httpAnswer(lc.head, ep.tls); said != "" {
				return nil, refusedf("client: WebSocket dial %s: %s", ep.url, said)
			}
		}
		return nil, fmt.Errorf("client: WebSocket dial %s: %w", ep.url, ctxErr(ctx, err))
	}
	lc.left.Store(-1) // the upgrade is done: no bound (MaxMessage bounds messages)
	lc.head = nil     // kept for a failed dial's error only (read before the reader starts)
	if hs.Protocol != sub {
		conn.Close()
		return nil, refusedf("client: WebSocket dial %s: router chose subprotocol %q, want %q", ep.url, hs.Protocol, sub)
	}
	t := &webSocket{
		stream:  stream{conn: conn, writeTimeout: cfg.WriteTimeout, track: cfg.KeepAlive > 0, now: cfg.now},
		op:      ws.OpBinary,
		batched: cfg.Batched,
		ser:     cfg.Serializer,
		maxSend: max(cfg.MaxOutgoing, 0),
	}
	t.br = t.reader(conn, br)
	if !cfg.Serializer.Binary() {
		t.op = ws.OpText
	}
	t.r = &wsutil.Reader{
		Source:         t.br,
		State:          ws.StateClientSide,
		MaxMessageSize: int64(cfg.MaxMessage),
		OnIntermediate: t.control,
	}
	return t, nil
}

// maxUpgradeResponse bounds the bytes read from the router before the
// WebSocket upgrade completes: its HTTP answer, and any bytes behind it
// that the dialer's buffer takes in (after TLS). gobwas/ws reads a line
// of the answer without limit, so a router (or whatever answers at the
// URL) sending a line without end had the client take it all in until
// DialTimeout (an 8 MiB line cost 40 MiB of allocations in a second).
const maxUpgradeResponse = 64 << 10

var errUpgradeTooLarge = fmt.Errorf("the router's answer to the upgrade exceeds %d KiB", maxUpgradeResponse>>10)

// upgradeConn is the connection while the WebSocket upgrade runs: reads
// fail once left bytes are spent. left is -1 once the upgrade is done.
// head keeps the first maxUpgradeHead bytes read, for httpAnswer.
type upgradeConn struct {
	net.Conn
	left atomic.Int64
	head []byte
}

// maxUpgradeHead bounds upgradeConn.head: a status line and a short body.
const maxUpgradeHead = 512

// httpAnswer says what the router answered the upgrade with, when its
// answer head (the first bytes read) is an HTTP response that gobwas/ws
// refused: "router answered HTTP 400: Client sent an HTTP request to an
// HTTPS server (a ws:// URL for a wss:// port?)". Else "". gobwas/ws
// refuses an HTTP/1.0 status line as "handshake error: bad HTTP protocol
// version", and the router answers plaintext HTTP on a TLS port with
// net/http's HTTP/1.0 400: a ws:// URL given a wss:// port was told
// nothing of the mistake.
func httpAnswer(head []byte, tls bool) string {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/")) || len(f[1]) != 3 || string(f[1]) == "101" {
		return "" // a 101 refused for its headers: gobwas/ws's error says why
	}
	for _, c := range f[1] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	said := "router answered HTTP " + string(f[1])
	if _, body, ok := bytes.Cut(head, []byte("\r\n\r\n")); ok {
		first, _, _ := bytes.Cut(body, []byte("\n"))
		first = bytes.TrimRight(bytes.TrimSpace(first), ".")
		if len(first) > 200 {
			first = first[:200]
		}
		if len(first) > 0 {
			said += ": " + strings.ToValidUTF8(string(first), "?")
		}
	}
	if !tls && bytes.Contains(head, []byte("HTTPS")) {
		said += " (a ws:// URL for a wss:// port?)"
	}
	return said
}

func (c *upgradeConn) Read(p []byte) (int, error) {
	left := c.left.Load()
	if left < 0 {
		return c.Conn.Read(p)
	}
	if left == 0 {
		return 0, errUpgradeTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	if k := min(n, maxUpgradeHead-len(c.head)); k > 0 {
		c.head = append(c.head, p[:k]...)
	}
	return n, err
}

func (t *webSocket) readMsg() ([]byte, error) {
	for {
		if len(t.rest) > 0 {
			p, err := t.nextBatched()
			if err != nil || p != nil {
				return p, err
			}
			continue
		}
		h, err := t.r.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := t.control(h, t.r); err != nil {
				return nil, err
			}
			if err := t.r.Discard(); err != nil {
				return nil, err
			}
			continue
		}
		if h.OpCode != ws.OpText && h.OpCode != ws.OpBinary {
			return nil, fmt.Errorf("client: unexpected WebSocket opcode %#x", h.OpCode)
		}
		p, err := t.buf.readAll(t.r, h.Length)
		if err != nil {
			return nil, err
		}
		if !t.batched {
			return p, nil
		}
		if len(p) == 0 {
			return nil, errors.New("client: empty WebSocket batch")
		}
		t.rest = p
	}
}

// release drops the read buffer as stream's does, unless messages of a
// batch are still to be read from it.
func (t *webSocket) release() {
	if len(t.rest) == 0 {
		t.stream.release()
	}
}

// nextBatched takes the next message off t.rest; nil, nil for an empty
// JSON element (a stray separator).
func (t *webSocket) nextBatched() ([]byte, error) {
	if t.ser == proto.JSON {
		i := bytes.IndexByte(t.rest, 0x1E)
		if i < 0 {
			p := t.rest
			t.rest = nil
			return p, nil
		}
		p := t.rest[:i]
		t.rest = t.rest[i+1:]
		if len(p) == 0 {
			return nil, nil
		}
		return p, nil
	}
	if len(t.rest) < 4 {
		return nil, errors.New("client: truncated WebSocket batch length")
	}
	n := binary.BigEndian.Uint32(t.rest)
	if uint64(n) > uint64(len(t.rest)-4) {
		return nil, errors.New("client: WebSocket batch element exceeds its frame")
	}
	p := t.rest[4 : 4+n]
	t.rest = t.rest[4+n:]
	return p, nil
}

// control answers a control frame: PING with PONG; CLOSE with CLOSE, then
// an error that ends the session. Its payload is at most 125 bytes
// (ws.CheckHeader, run by NextFrame, enforces it).
func (t *webSocket) control(h ws.Header, r io.Reader) error {
	p := t.ctl[:h.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		return t.writeFrame(ws.OpPong, p)
	case ws.OpPong:
		t.ponged(p)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		// [RFC6455 §5.5.1]: "If an endpoint receives a Close frame and did
		// not previously send a Close frame, the endpoint MUST send a Close
		// frame in response."
		var echo []byte
		if len(p) >= 2 {
			echo = p[:2]
		}
		t.writeFrame(ws.OpClose, echo)
		return fmt.Errorf("client: WebSocket closed by the router: %d %s", code, reason)
	}
	return nil
}

func (t *webSocket) writeMsg(p []byte) error {
	if !t.batched {
		if t.maxSend > 0 && len(p) > t.maxSend {
			return ErrMessageTooLarge
		}
		return t.writeFrame(t.op, p)
	}
	var pre, suf []byte
	var lenBuf [4]byte
	sep := [1]byte{0x1E}
	if t.ser == proto.JSON {
		suf = sep[:]
	} else {
		binary.BigEndian.PutUint32(lenBuf[:], uint32(len(p)))
		pre = lenBuf[:]
	}
	if t.maxSend > 0 && len(pre)+len(p)+len(suf) > t.maxSend {
		return ErrMessageTooLarge
	}
	return t.writeFrame(t.op, pre, p, suf)
}

// writeFrame writes one final frame whose payload is the concatenation of
// parts, masked in place.
func (t *webSocket) writeFrame(op ws.OpCode, parts ...[]byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.writeFrameLocked(op, parts...)
}

func (t *webSocket) writeFrameLocked(op ws.OpCode, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	mask := ws.NewMask()
	var hb [ws.MaxHeaderSize]byte
	h := appendFrameHeader(hb[:0], op, n, mask)
	off := 0
	for _, p := range parts {
		ws.Cipher(p, mask, off)
		off += len(p)
	}
	bufs := make([][]byte, 0, 4)
	bufs = append(bufs, h)
	bufs = append(bufs, parts...)
	return t.writeLocked(bufs...)
}

// appendFrameHeader appends a masked final frame header (RFC 6455 §5.2).
func appendFrameHeader(b []byte, op ws.OpCode, n int, mask [4]byte) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, mask[:]...)
}

func (t *webSocket) ping() error { return t.writeFrame(ws.OpPing, t.pingPayload()) }

func (t *webSocket) setReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }

// close sends a Close frame (1000, normal closure) when graceful and the
// write lock is free, then closes the connection without waiting for the
// router's Close: the WAMP GOODBYE exchange already ended the session.
func (t *webSocket) close(graceful bool) error {
	if graceful && t.wmu.TryLock() {
		body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
		t.conn.SetWriteDeadline(time.Now().Add(time.Second))
		t.writeFrameLocked(ws.OpClose, body)
		t.wmu.Unlock()
	}
	return t.conn.Close()
}
