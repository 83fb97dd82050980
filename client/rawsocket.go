package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// RawSocket (WAMP Advanced Profile, §Transports: RawSocket).
//
// Handshake, client to router, 4 octets: 0x7F, LLLL SSSS, 0x00, 0x00, where
// LLLL is the exponent of the largest message the client will receive,
// 2^(9+LLLL), and SSSS the serializer. The router answers with the same
// layout (its own limit, the serializer echoed), or with an error: 0x7F,
// EEEE 0000, 0x00, 0x00.
//
// Frames: a 4-octet header RRRR XTTT followed by a 24-bit length, then the
// payload. TTT is 0 for a WAMP message, 1 for PING, 2 for PONG; X is a 25th
// length bit (only for exactly 16 MiB). "A Pong MUST echo the payload of
// the Ping."
const (
	rsMagic = 0x7F

	rsFrameMessage = 0
	rsFramePing    = 1
	rsFramePong    = 2
)

// rawSocketErrors are the handshake error codes.
var rawSocketErrors = [...]string{
	0: "illegal (must not be used)",
	1: "serializer unsupported",
	2: "maximum message length unacceptable",
	3: "use of reserved bits (unsupported feature)",
	4: "maximum connection count reached",
}

// rawSocket is a RawSocket transport.
type rawSocket struct {
	stream
	maxRecv int // Static: our receive limit, as announced.
	maxSend int // Static: the router's receive limit, or Config.MaxOutgoing when smaller.
	hdr     [4]byte
}

func dialRawSocket(ctx context.Context, ep endpoint, cfg *Config) (*rawSocket, error) {
	var tlsCfg *tls.Config
	if ep.tls {
		tlsCfg = cfg.TLS
		if tlsCfg == nil {
			tlsCfg = &tls.Config{}
		}
		if tlsCfg.ServerName == "" {
			tlsCfg = tlsCfg.Clone()
			tlsCfg.ServerName = ep.host
		}
	}
	conn, err := dialTCP(ctx, ep.addr, tlsCfg)
	if err != nil {
		return nil, err
	}
	t := &rawSocket{stream: stream{conn: conn, writeTimeout: cfg.WriteTimeout, track: cfg.KeepAlive > 0, now: cfg.now}}
	t.br = t.reader(conn, nil)
	if err := t.handshake(ctx, cfg, ep.tls); err != nil {
		conn.Close()
		return nil, err
	}
	return t, nil
}

func (t *rawSocket) handshake(ctx context.Context, cfg *Config, overTLS bool) error {
	if d, ok := ctx.Deadline(); ok {
		t.conn.SetDeadline(d)
		defer t.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { t.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	l, limit := rawSocketExponent(cfg.MaxMessage)
	t.maxRecv = limit
	hs := [4]byte{rsMagic, l<<4 | byte(cfg.Serializer), 0, 0}
	if _, err := t.conn.Write(hs[:]); err != nil {
		return fmt.Errorf("client: RawSocket handshake: %w", ctxErr(ctx, err))
	}
	var r [4]byte
	if _, err := io.ReadFull(t.br, r[:]); err != nil {
		if ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
			// What a plaintext client meets at a TLS port: the router
			// closes at the first byte that cannot start a TLS record.
			// It said only "EOF".
			hint := ""
			if !overTLS {
				hint = " (a TLS port?)"
			}
			return fmt.Errorf("client: the router closed the connection during the RawSocket handshake%s: %w", hint, err)
		}
		return fmt.Errorf("client: RawSocket handshake: %w", ctxErr(ctx, err))
	}
	if r[0] != rsMagic {
		return &dialRefusal{"client: RawSocket handshake: router reply does not start with 0x7F"}
	}
	if r[1]&0x0F == 0 {
		code := r[1] >> 4
		msg := "unknown error"
		if int(code) < len(rawSocketErrors) {
			msg = rawSocketErrors[code]
		}
		return refusedf("client: RawSocket handshake refused: %s (code %d)", msg, code)
	}
	if proto.Serializer(r[1]&0x0F) != cfg.Serializer {
		return refusedf("client: RawSocket handshake: router answered serializer %d, want %d", r[1]&0x0F, cfg.Serializer)
	}
	if r[2] != 0 || r[3] != 0 {
		return &dialRefusal{"client: RawSocket handshake: reserved octets are not zero"}
	}
	t.maxSend = 1 << (9 + int(r[1]>>4))
	if cfg.MaxOutgoing > 0 && cfg.MaxOutgoing < t.maxSend {
		t.maxSend = cfg.MaxOutgoing
	}
	return nil
}

// ctxErr prefers the context's error when ctx is done: an I/O error after a
// deadline taken from or forced by ctx is really the context's. The read
// deadline may fire a moment before ctx's own timer, hence the clock check.
func ctxErr(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil {
		return ce
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return context.DeadlineExceeded
		}
	}
	return err
}

func (t *rawSocket) readMsg() ([]byte, error) {
	for {
		if _, err := io.ReadFull(t.br, t.hdr[:]); err != nil {
			return nil, err
		}
		h := t.hdr
		if h[0]&0xF0 != 0 {
			return nil, errors.New("client: RawSocket frame uses reserved bits")
		}
		n := int(h[0]&0x08)<<21 | int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		if n > t.maxRecv {
			return nil, fmt.Errorf("client: RawSocket frame of %d bytes exceeds the announced limit of %d", n, t.maxRecv)
		}
		p, err := t.buf.readN(t.br, n)
		if err != nil {
			return nil, err
		}
		switch h[0] & 0x07 {
		case rsFrameMessage:
			return p, nil
		case rsFramePing:
			if err := t.writeFrame(rsFramePong, p); err != nil {
				return nil, err
			}
		case rsFramePong:
			t.ponged(p) // the keepalive's answer, or unsolicited or late: nothing to do
		default:
			return nil, fmt.Errorf("client: RawSocket frame type %d is reserved", h[0]&0x07)
		}
		// Done with the PING or PONG: a large one's buffer goes now, as a
		// message's does once handled (release), not when the next frame
		// comes (on an idle session, never: a router's 16 MiB PING was
		// held for the session's life).
		t.buf.release()
	}
}

func (t *rawSocket) writeMsg(p []byte) error {
	if len(p) > t.maxSend {
		return ErrMessageTooLarge
	}
	return t.writeFrame(rsFrameMessage, p)
}

func (t *rawSocket) writeFrame(typ byte, p []byte) error {
	n := len(p)
	h := [4]byte{typ | byte(n>>21)&0x08, byte(n >> 16), byte(n >> 8), byte(n)}
	return t.write(h[:], p)
}

func (t *rawSocket) ping() error { return t.writeFrame(rsFramePing, t.pingPayload()) }

func (t *rawSocket) setReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }

func (t *rawSocket) close(bool) error { return t.conn.Close() }
