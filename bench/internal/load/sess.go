package load

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"

	"github.com/panjf2000/gnet/v2"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

type sstate uint8

const (
	stUpgrade sstate = iota // WebSocket: waiting for 101
	stRawHS                 // RawSocket: waiting for the handshake reply
	stJoin                  // HELLO sent: waiting for WELCOME (or CHALLENGE)
	stOpen                  // joined
	stLeaving               // GOODBYE sent: waiting for the router's
	stDone                  // close the connection
)

// role is what a session does once joined. Its methods run on the
// session's driver goroutine (the event loop, or the session's goroutine).
type role interface {
	// joined runs on WELCOME.
	joined(s *sess, now int64)
	// message runs for every message after WELCOME; typ, a and b are
	// wire.Head's.
	message(s *sess, typ proto.Code, a, b uint64, msg []byte, now int64)
	// ended runs once when the connection is gone; err is nil after a
	// GOODBYE exchange.
	ended(s *sess, err error)
}

// waker is a role that also acts when woken (gnet Conn.Wake) rather than
// only on input: publishers, and callers at the start signal.
type waker interface {
	wake(s *sess, now int64)
}

// Errors a session ends with.
var (
	errAbort     = errors.New("ABORT")
	errClosed    = errors.New("connection closed before the session ended")
	errProtocol  = errors.New("unexpected message")
	errChallenge = errors.New("CHALLENGE without credentials")
)

// sess is one WAMP session's client side: transport handshake, framing,
// join (anonymous or WAMP-CRA) and dispatch to its role. Not safe for
// concurrent use: it belongs to one driver goroutine.
type sess struct {
	ep    *endpoint
	fr    wire.Framer
	st    sstate
	r     role
	out   []byte
	frag  []byte
	sid   uint64
	req   uint64    // next request id (fixed width, see wire.FixedMin)
	gc    gnet.Conn // gnet driver only
	uc    *uconn    // uring driver only
	tls   *tlsLayer // gnet driver, TLS endpoints only
	conn  net.Conn  // goroutine driver only (to close it from outside)
	err   error     // why the session ended
	ended bool
	enc   proto.Encoder
	tmp   []byte
	abort string // ABORT reason, for reports
	// arrive is, while input runs, when the kernel received the data being
	// read (on nowNS's clock), if the driver knows (the uring driver's
	// receive timestamps); else 0.
	arrive int64
}

func newSess(ep *endpoint, r role) *sess {
	s := &sess{ep: ep, r: r, req: wire.FixedMin}
	s.fr = wire.Framer{WS: ep.ws, Ser: ep.ser}
	if ep.ws {
		s.fr.Mask = &ep.mask
	}
	return s
}

// wakeUp runs the session's waker role on its event loop soon (from any
// goroutine); false with the goroutine driver, which has no loop.
func (s *sess) wakeUp() bool {
	switch {
	case s.gc != nil:
		s.gc.Wake(nil)
	case s.uc != nil:
		s.uc.wake()
	default:
		return false
	}
	return true
}

// start queues the transport handshake.
func (s *sess) start() {
	if s.ep.ws {
		s.st = stUpgrade
		s.out = append(s.out, s.ep.upgrade...)
	} else {
		s.st = stRawHS
		hs := wire.RawHandshake(s.ep.ser, 0xf)
		s.out = append(s.out, hs[:]...)
	}
}

// nextReq returns a fresh request id.
func (s *sess) nextReq() uint64 {
	s.req++
	if s.req >= wire.FixedMax {
		s.req = wire.FixedMin + 1
	}
	return s.req
}

// send frames and queues one encoded message.
func (s *sess) send(msg []byte) { s.out = s.fr.Append(s.out, msg) }

// sendMsg encodes m with the session's reused encoder and queues it.
func (s *sess) sendMsg(m *proto.Message) {
	b, err := s.enc.Append(s.tmp[:0], s.ep.ser, m)
	if err != nil {
		s.fail(err)
		return
	}
	s.tmp = b
	s.send(b)
}

// leave says GOODBYE.
func (s *sess) leave() {
	if s.st != stOpen {
		s.st = stDone
		return
	}
	s.send(s.ep.goodbye)
	s.st = stLeaving
}

func (s *sess) fail(err error) {
	if s.err == nil {
		s.err = err
	}
	s.st = stDone
}

// closed reports the end to the role, once.
func (s *sess) closed(err error) {
	if s.ended {
		return
	}
	s.ended = true
	if s.err == nil && s.st != stDone {
		s.err = errClosed
		if err != nil {
			s.err = fmt.Errorf("%w: %v", errClosed, err)
		}
	}
	s.st = stDone
	s.r.ended(s, s.err)
}

// input consumes whole handshakes and frames from b and returns how many
// bytes it used; output goes to s.out.
func (s *sess) input(b []byte, now int64) int {
	used := 0
	for s.st != stDone {
		n := s.step(b[used:], now)
		if n == 0 {
			break
		}
		used += n
	}
	if s.st == stDone {
		return len(b)
	}
	return used
}

func (s *sess) step(b []byte, now int64) int {
	switch s.st {
	case stUpgrade:
		n, err := wire.ParseUpgradeResponse(b, s.ep.ser)
		if n == 0 {
			return 0
		}
		if err != nil {
			s.fail(fmt.Errorf("websocket upgrade refused: %.60q", b))
			return n
		}
		s.hello()
		return n
	case stRawHS:
		if len(b) < 4 {
			return 0
		}
		if _, err := wire.ParseRawHandshake(b[:4]); err != nil {
			s.fail(fmt.Errorf("rawsocket handshake refused: % x", b[:4]))
			return 4
		}
		s.hello()
		return 4
	}
	if s.ep.ws {
		return s.wsFrame(b, now)
	}
	typ, n, ok, err := wire.ParseRawHeader(b)
	if err != nil {
		s.fail(err)
		return len(b)
	}
	if !ok || len(b) < 4+n {
		return 0
	}
	p := b[4 : 4+n]
	switch typ {
	case wire.RawMessage:
		s.message(p, now)
	case wire.RawPing:
		s.out = wire.AppendRawHeader(s.out, wire.RawPong, len(p))
		s.out = append(s.out, p...)
	}
	return 4 + n
}

func (s *sess) wsFrame(b []byte, now int64) int {
	h, hn, err := wire.ParseFrameHeader(b)
	if err != nil {
		s.fail(err)
		return len(b)
	}
	if hn == 0 || len(b) < hn+h.Len {
		return 0
	}
	p := b[hn : hn+h.Len]
	if h.Masked {
		wire.MaskBytes(p, h.Mask, 0)
	}
	switch h.Op {
	case wire.OpText, wire.OpBinary:
		if h.Fin {
			s.message(p, now)
		} else {
			s.frag = append(s.frag[:0], p...)
		}
	case wire.OpCont:
		s.frag = append(s.frag, p...)
		if h.Fin {
			s.message(s.frag, now)
			s.frag = nil
		}
	case wire.OpPing:
		s.out = wire.AppendFrameHeader(s.out, wire.OpPong, len(p), &s.ep.mask)
		body := len(s.out)
		s.out = append(s.out, p...)
		wire.MaskBytes(s.out[body:], s.ep.mask, 0)
	case wire.OpClose:
		s.out = wire.AppendFrameHeader(s.out, wire.OpClose, 0, &s.ep.mask)
		if s.st != stLeaving {
			s.fail(fmt.Errorf("websocket closed by the router (%d bytes of reason)", len(p)))
		} else {
			s.st = stDone
		}
	}
	return hn + h.Len
}

func (s *sess) hello() {
	s.send(s.ep.hello)
	s.st = stJoin
}

// message handles one WAMP message.
func (s *sess) message(msg []byte, now int64) {
	typ, a, b, err := wire.Head(s.ep.ser, msg)
	if err != nil {
		s.fail(fmt.Errorf("unreadable message: %w", err))
		return
	}
	switch s.st {
	case stJoin:
		switch typ {
		case proto.CodeWelcome:
			s.sid = a
			s.st = stOpen
			s.r.joined(s, now)
		case proto.CodeChallenge:
			s.challenge(msg)
		case proto.CodeAbort:
			s.abortMsg(msg)
		default:
			s.fail(fmt.Errorf("%w: %v before WELCOME", errProtocol, typ))
		}
	case stOpen:
		switch typ {
		case proto.CodeGoodbye:
			s.send(s.ep.goodbyeReply)
			s.fail(errors.New("GOODBYE from the router"))
		case proto.CodeAbort:
			s.abortMsg(msg)
		default:
			s.r.message(s, typ, a, b, msg, now)
		}
	case stLeaving:
		switch typ {
		case proto.CodeGoodbye:
			s.st = stDone
		case proto.CodeAbort:
			s.abortMsg(msg)
		default:
			s.r.message(s, typ, a, b, msg, now) // replies still in flight
		}
	}
}

func (s *sess) abortMsg(msg []byte) {
	m, err := proto.Decode(s.ep.ser, msg)
	reason := "?"
	if err == nil {
		reason = string(m.URI)
	}
	s.abort = reason
	s.fail(fmt.Errorf("%w %s", errAbort, reason))
}

// challenge answers a WAMP-CRA CHALLENGE with the plain secret (cold
// path: decoded in full).
func (s *sess) challenge(msg []byte) {
	a := s.ep.auth
	m, err := proto.Decode(s.ep.ser, msg)
	if err == nil && a != nil && a.tickets != nil && string(m.URI) == "ticket" {
		t := a.tickets[(a.next.Add(1)-1)%uint64(len(a.tickets))]
		s.sendMsg(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte(t), Dict: a.emptyDict})
		return
	}
	if err != nil || a == nil || string(m.URI) != "wampcra" {
		s.fail(errChallenge)
		return
	}
	v, err := proto.DecodeValue(m.Dict)
	extra, _ := v.(map[string]any)
	ch, _ := extra["challenge"].(string)
	if err != nil || ch == "" {
		s.fail(errors.New("CHALLENGE without extra.challenge"))
		return
	}
	if _, salted := extra["salt"]; salted {
		s.fail(errors.New("salted WAMP-CRA challenge: give the user a plain secret"))
		return
	}
	s.sendMsg(&proto.Message{Type: proto.CodeAuthenticate, URI: []byte(CRASign(a.secret, ch)), Dict: a.emptyDict})
}

// CRASign is the WAMP-CRA signature of a challenge with a plain secret:
// base64(HMAC-SHA256(secret, challenge)).
func CRASign(secret, challenge string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(challenge))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// randomMask returns a random non-zero WebSocket masking key.
func randomMask() [4]byte {
	var k [4]byte
	for k == ([4]byte{}) {
		rand.Read(k[:])
	}
	return k
}
