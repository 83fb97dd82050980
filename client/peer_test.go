package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"

	"github.com/edgewamp/edgewamp/proto"
)

// This file holds a scripted WAMP peer: a real TCP listener on 127.0.0.1
// that speaks RawSocket or WebSocket (sniffing the first byte, as the router
// does) and lets the test goroutine read and write WAMP messages one by
// one. Client calls that block run on helper goroutines (goDo); the test
// goroutine plays the router.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The real router's event loops (gnet) keep a global worker pool.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"))
}

// wait bounds every wait in these tests.
const wait = 5 * time.Second

// peer is a listening scripted router.
type peer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *peerConn
	// rsReply, when set, makes the RawSocket handshake reply; the default
	// accepts with a 16 MiB limit.
	rsReply func(hs [4]byte) [4]byte
	wg      sync.WaitGroup
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	return newPeerTLS(t, nil)
}

// newPeerTLS starts a peer that speaks TLS when cfg is not nil.
func newPeerTLS(t *testing.T, cfg *tls.Config) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	p := &peer{t: t, ln: ln, conns: make(chan *peerConn, 4)}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
		close(p.conns)
		for c := range p.conns {
			c.conn.Close()
		}
	})
	return p
}

// url returns the URL for scheme ("ws", "wss", "rs", "tcp" or "rss").
func (p *peer) url(scheme string) string {
	if scheme == "ws" || scheme == "wss" {
		return scheme + "://" + p.ln.Addr().String() + "/ws"
	}
	return scheme + "://" + p.ln.Addr().String()
}

func (p *peer) acceptLoop() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		c, err := p.handshake(conn)
		if err != nil {
			conn.Close()
			continue
		}
		p.conns <- c
	}
}

func (p *peer) handshake(conn net.Conn) (*peerConn, error) {
	conn.SetDeadline(time.Now().Add(wait))
	defer conn.SetDeadline(time.Time{})
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	c := &peerConn{t: p.t, conn: conn, br: br}
	if first[0] == rsMagic {
		var hs [4]byte
		if _, err := io.ReadFull(br, hs[:]); err != nil {
			return nil, err
		}
		reply := [4]byte{rsMagic, 0xF0 | hs[1]&0x0F, 0, 0}
		if p.rsReply != nil {
			reply = p.rsReply(hs)
		}
		if _, err := conn.Write(reply[:]); err != nil {
			return nil, err
		}
		c.ser = proto.Serializer(hs[1] & 0x0F)
		c.clientMax = 1 << (9 + int(hs[1]>>4))
		return c, nil
	}
	u := ws.Upgrader{Protocol: func(b []byte) bool {
		_, _, ok := proto.ParseSubprotocol(string(b))
		return ok
	}}
	hs, err := u.Upgrade(struct {
		io.Reader
		io.Writer
	}{br, conn})
	if err != nil {
		return nil, err
	}
	ser, batched, ok := proto.ParseSubprotocol(hs.Protocol)
	if !ok {
		return nil, fmt.Errorf("no subprotocol")
	}
	c.ws, c.ser, c.batched = true, ser, batched
	return c, nil
}

// accept returns the next connection, already past the transport
// handshake.
func (p *peer) accept() *peerConn {
	p.t.Helper()
	select {
	case c := <-p.conns:
		p.t.Cleanup(func() { c.conn.Close() })
		return c
	case <-time.After(wait):
		p.t.Fatal("peer: no connection")
		return nil
	}
}

// peerConn is the router's side of one connection. Its methods must be
// called from the test goroutine (they call t.Fatal).
type peerConn struct {
	t         *testing.T
	conn      net.Conn
	br        *bufio.Reader
	ws        bool
	batched   bool
	ser       proto.Serializer
	clientMax int // RawSocket: the client's announced limit

	wmu     sync.Mutex // a frame's writes (the pongs readFrame writes beside chatter's)
	pending [][]byte   // WS batched: messages left in the last frame
	pong    []byte     // the last pong's payload; readFrame returns errPong after one
	dec     proto.Decoder
}

var errPong = errors.New("peer: pong")

// expectPong reads the client's pong; any WAMP message before it fails the
// test.
func (c *peerConn) expectPong() []byte {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := c.readFrame()
	if err != errPong {
		c.t.Fatalf("peer: want a pong, got %q, %v", b, err)
	}
	return c.pong
}

// readFrame returns the next WAMP message bytes, answering control frames.
func (c *peerConn) readFrame() ([]byte, error) {
	if len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		return p, nil
	}
	if !c.ws {
		for {
			var h [4]byte
			if _, err := io.ReadFull(c.br, h[:]); err != nil {
				return nil, err
			}
			n := int(h[0]&0x08)<<21 | int(h[1])<<16 | int(h[2])<<8 | int(h[3])
			p := make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return nil, err
			}
			switch h[0] & 7 {
			case rsFrameMessage:
				return p, nil
			case rsFramePing: // answered, as a router does
				c.writeRS(rsFramePong, p)
			case rsFramePong:
				c.pong = p
				return nil, errPong
			}
		}
	}
	for {
		msgs, err := wsutil.ReadClientMessage(c.br, nil)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.OpCode {
			case ws.OpClose:
				return nil, io.EOF
			case ws.OpPing:
				c.writeWS(ws.OpPong, m.Payload)
			case ws.OpPong:
				c.pong = m.Payload
				return nil, errPong
			case ws.OpText, ws.OpBinary:
				if (m.OpCode == ws.OpText) != (c.ser == proto.JSON) {
					return nil, fmt.Errorf("peer: %s message in a %v frame", c.ser, m.OpCode)
				}
				if !c.batched {
					return m.Payload, nil
				}
				c.pending = splitBatch(c.ser, m.Payload)
				if len(c.pending) == 0 {
					return nil, errors.New("peer: empty batch")
				}
				p := c.pending[0]
				c.pending = c.pending[1:]
				return p, nil
			}
		}
	}
}

func splitBatch(ser proto.Serializer, p []byte) [][]byte {
	var out [][]byte
	if ser == proto.JSON {
		for _, e := range bytes.Split(p, []byte{0x1E}) {
			if len(e) > 0 {
				out = append(out, e)
			}
		}
		return out
	}
	for len(p) >= 4 {
		n := int(binary.BigEndian.Uint32(p))
		out = append(out, p[4:4+n])
		p = p[4+n:]
	}
	return out
}

// recv reads and decodes the next message (a clone).
func (c *peerConn) recv() *proto.Message {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("peer: read: %v", err)
	}
	var m proto.Message
	if err := c.dec.Decode(c.ser, b, &m); err != nil {
		c.t.Fatalf("peer: decode %q: %v", b, err)
	}
	return m.Clone()
}

// expect reads the next message and checks its type.
func (c *peerConn) expect(code proto.Code) *proto.Message {
	c.t.Helper()
	m := c.recv()
	if m.Type != code {
		c.t.Fatalf("peer: got %s, want %s", m.Type, code)
	}
	return m
}

// expectEOF waits for the client to close the connection.
func (c *peerConn) expectEOF() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		b, err := c.readFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return
			}
			c.t.Fatalf("peer: waiting for EOF: %v", err)
		}
		m, _ := proto.Decode(c.ser, b)
		if m == nil {
			c.t.Fatalf("peer: waiting for EOF got undecodable %q", b)
		}
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func (c *peerConn) encode(m *proto.Message) []byte {
	c.t.Helper()
	b, err := proto.Append(nil, c.ser, m)
	if err != nil {
		c.t.Fatalf("peer: encode %s: %v", m.Type, err)
	}
	return b
}

// send writes messages; on a batched WebSocket they share one frame.
func (c *peerConn) send(ms ...*proto.Message) {
	c.t.Helper()
	var err error
	switch {
	case !c.ws:
		for _, m := range ms {
			err = c.writeRS(rsFrameMessage, c.encode(m))
		}
	case c.batched:
		var frame []byte
		for _, m := range ms {
			b := c.encode(m)
			if c.ser == proto.JSON {
				frame = append(append(frame, b...), 0x1E)
			} else {
				frame = binary.BigEndian.AppendUint32(frame, uint32(len(b)))
				frame = append(frame, b...)
			}
		}
		err = c.writeWS(c.op(), frame)
	default:
		for _, m := range ms {
			err = c.writeWS(c.op(), c.encode(m))
		}
	}
	if err != nil {
		c.t.Fatalf("peer: write: %v", err)
	}
}

func (c *peerConn) op() ws.OpCode {
	if c.ser == proto.JSON {
		return ws.OpText
	}
	return ws.OpBinary
}

func (c *peerConn) writeRS(typ byte, p []byte) error {
	n := len(p)
	h := []byte{typ | byte(n>>21)&0x08, byte(n >> 16), byte(n >> 8), byte(n)}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(append(h, p...))
	return err
}

// writeWS writes one server WebSocket frame, whole beside other writers.
func (c *peerConn) writeWS(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteServerMessage(c.conn, op, p)
}

// raw encodes a generic value in the connection's serializer.
func (c *peerConn) raw(v any) proto.Raw {
	c.t.Helper()
	r, err := proto.EncodeValue(c.ser, v)
	if err != nil {
		c.t.Fatalf("peer: encode value: %v", err)
	}
	return r
}

// dict decodes a message's dictionary.
func (c *peerConn) dict(m *proto.Message) map[string]any {
	c.t.Helper()
	d, err := decodeDict(m.Dict, nil)
	if err != nil {
		c.t.Fatalf("peer: %s dict: %v", m.Type, err)
	}
	return d
}

// payload decodes a message's Arguments and ArgumentsKw.
func (c *peerConn) payload(m *proto.Message) ([]any, map[string]any) {
	c.t.Helper()
	a, k, err := decodePayload(m, nil)
	if err != nil {
		c.t.Fatalf("peer: %s payload: %v", m.Type, err)
	}
	return a, k
}

// welcome answers the HELLO with WELCOME and returns the HELLO.
func (c *peerConn) welcome(session uint64) *proto.Message {
	c.t.Helper()
	h := c.expect(proto.CodeHello)
	w := &proto.Message{Type: proto.CodeWelcome, ID: session}
	w.Dict = c.raw(map[string]any{
		"realm": string(h.URI), "authid": "anon-1", "authrole": "anonymous", "authmethod": "anonymous",
		"roles": map[string]any{"dealer": map[string]any{}, "broker": map[string]any{}},
	})
	c.send(w)
	return h
}

// answerGoodbye serves the end of a session: it answers a GOODBYE with
// GOODBYE and reads until the client closes the connection.
func (c *peerConn) answerGoodbye() {
	c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		b, err := c.readFrame()
		if err != nil {
			return
		}
		m, err := proto.Decode(c.ser, b)
		if err == nil && m.Type == proto.CodeGoodbye {
			g := &proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)}
			b, _ := proto.Append(nil, c.ser, g)
			if c.ws {
				wsutil.WriteServerMessage(c.conn, c.op(), b)
			} else {
				c.writeRS(rsFrameMessage, b)
			}
		}
	}
}

// async runs a blocking client operation on its own goroutine.
type async[T any] chan asyncResult[T]

type asyncResult[T any] struct {
	v   T
	err error
}

func goDo[T any](f func() (T, error)) async[T] {
	a := make(async[T], 1)
	go func() {
		v, err := f()
		a <- asyncResult[T]{v, err}
	}()
	return a
}

// wait returns the operation's result; the test fails if it takes longer
// than the bound.
func (a async[T]) wait(t *testing.T) (T, error) {
	t.Helper()
	select {
	case r := <-a:
		return r.v, r.err
	case <-time.After(wait):
		t.Fatal("operation did not finish")
		var zero T
		return zero, nil
	}
}

// pending reports whether the operation is still running after d.
func (a async[T]) pending(d time.Duration) bool {
	select {
	case r := <-a:
		a <- r
		return false
	case <-time.After(d):
		return true
	}
}

// setup starts a peer, dials it with a config for scheme ("ws", "rs", or
// "wsb" for batched WebSocket) and ser, joins, and registers a cleanup
// that closes the session.
func setup(t *testing.T, scheme string, ser proto.Serializer, mods ...func(*Config)) (*Session, *peerConn) {
	t.Helper()
	p := newPeer(t)
	cfg := Config{Realm: "realm1", Serializer: ser, DialTimeout: wait, ReplyTimeout: wait}
	switch scheme {
	case "wsb":
		cfg.URL, cfg.Batched = p.url("ws"), true
	default:
		cfg.URL = p.url(scheme)
	}
	for _, f := range mods {
		f(&cfg)
	}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.welcome(77)
	s, err := a.wait(t)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { closeSession(t, s, c) })
	return s, c
}

// closeSession closes s while the peer answers its GOODBYE.
func closeSession(t *testing.T, s *Session, c *peerConn) {
	t.Helper()
	done := goDo(func() (struct{}, error) { return struct{}{}, s.Close() })
	c.answerGoodbye()
	done.wait(t)
}

// eq fails the test when got and want differ.
func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %#v, want %#v", what, got, want)
	}
}

// noErr fails the test on err.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wampErr checks that err is an *Error with uri and returns it.
func wampErr(t *testing.T, err error, uri string) *Error {
	t.Helper()
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.URI != uri {
		t.Fatalf("error URI = %q, want %q", e.URI, uri)
	}
	return e
}
